import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// How instance root filesystems are made on this host.
public enum RootfsMode: String, Sendable {
    /// An overlay mount over the stored layers: nothing is copied.
    case overlay
    /// Where overlayfs is missing: the layers applied in order as hard links to the stored files (the rootfs
    /// is read-only inside the sandbox, so the store's files cannot be changed through them).
    case hardlinkFarm = "hardlink-farm"

    /// overlay where the kernel has it, unless FAASBOX_ROOTFS=hardlink-farm asks otherwise.
    public static let current: RootfsMode = {
        if let forced = ProcessInfo.processInfo.environment["FAASBOX_ROOTFS"], let mode = RootfsMode(rawValue: forced) {
            return mode
        }
        return FileSystem.readProcFile("/proc/filesystems").contains("\toverlay\n") ? .overlay : .hardlinkFarm
    }()
}

/// The root filesystem of one instance: an overlay whose lower layers are the image's stored layers and whose
/// upper and work directories are the instance's own, so starting an instance copies nothing (or, without
/// overlayfs, a hard-link farm of the layers). With overlayfs the instance's directory is a small tmpfs of its
/// own: the upper layer holds only what faasbox writes there (/etc/hosts, mount points: the function's rootfs
/// is read-only) and the layer list, so a cold start writes nothing to the state dir's filesystem and works
/// when that is full.
public final class InstanceRootfs: Sendable {
    /// The instance's directory: `rootfs/`, `upper/`, `work/` live in it.
    public let directory: String
    /// The merged tree to run in.
    public let path: String
    private let removed = AtomicFlag()

    init(directory: String) {
        self.directory = directory
        self.path = "\(directory)/rootfs"
    }

    /// Makes the rootfs for `image` in a new directory `directory` (which must not exist yet).
    public static func compose(_ image: PulledImage, in directory: String, mode: RootfsMode = .current) throws(ImageError)
        -> InstanceRootfs
    {
        if image.layers.isEmpty { throw .malformed(what: "image \(image.source)", reason: "it has no layers") }
        let rootfs = InstanceRootfs(directory: directory)
        do {
            if mkdir(directory, 0o755) != 0 { throw SystemCallError.current("mkdir", path: directory) }
            if mode == .overlay
                && mount("tmpfs", directory, "tmpfs", UInt(MS_NODEV | MS_NOSUID), "size=\(upperBytes),mode=0755") != 0
            {
                throw SystemCallError.current("mount(tmpfs)", path: directory)
            }
            for sub in ["/rootfs", "/upper", "/work"] {
                if mkdir(directory + sub, 0o755) != 0 { throw SystemCallError.current("mkdir", path: directory + sub) }
            }
            if mode == .hardlinkFarm {
                try HardlinkFarm.apply(image.layers.map(\.path), into: rootfs.path)
                return rootfs
            }
            try mountOverlay(image.layers.map(\.path), rootfs: rootfs)
        } catch let error as SystemCallError {
            rootfs.remove()
            throw .system(error)
        } catch let error as ImageError {
            rootfs.remove()
            throw error
        } catch {
            rootfs.remove()
            throw .malformed(what: "rootfs", reason: "\(error)")
        }
        return rootfs
    }

    /// The size of an instance directory's tmpfs: the upper layer's few files and the layer list.
    static let upperBytes = 16 << 20

    /// The overlay of `layers` (bottom first; their paths as given) at `rootfs.path`, over its upper and work.
    private static func mountOverlay(_ layers: [String], rootfs: InstanceRootfs) throws(ImageError) {
        // overlayfs lists the top layer first.
        let lower = layers.reversed().map { escape($0) }.joined(separator: ":")
        let options =
            "lowerdir=\(lower),upperdir=\(escape(rootfs.directory + "/upper")),workdir=\(escape(rootfs.directory + "/work"))"
        if options.utf8.count >= 4096 {
            throw ImageError.limitExceeded("\(layers.count) layers: overlay options exceed a page")
        }
        if mount("overlay", rootfs.path, "overlay", UInt(MS_NODEV), options) != 0 {
            throw .system(.current("mount(overlay)", path: rootfs.path))
        }
    }

    /// Makes the rootfs's files read as owned by `idMap`'s ids: the overlay mounted again over idmapped views of
    /// the stored layers (one idmapped mount of `layersRoot`, which holds them all), its upper directory owned
    /// by the mapped root, so what root inside writes is stored as that host id; a hard-link farm is covered by
    /// an idmapped mount of itself. Call before anything runs in the rootfs.
    func mapOwners(layers: [String], layersRoot: String, to idMap: RootfsIDMap, mode: RootfsMode = .current)
        throws(ImageError)
    {
        do throws(SystemCallError) {
            if mode == .hardlinkFarm {
                try DetachedMount.attach(DetachedMount.idmapped(path, userNamespace: idMap.userNamespace), at: path)
                return
            }
            if let outside = layers.first(where: { !$0.hasPrefix(layersRoot + "/") }) {
                throw SystemCallError("idmapped layers", path: outside, errno: .invalidArgument)
            }
            if chown(directory + "/upper", idMap.hostRoot, idMap.hostRoot) != 0 {
                throw .current("chown", path: directory + "/upper")
            }
        } catch {
            throw .system(error)
        }
        let view: OwnedFileDescriptor
        do { view = try DetachedMount.idmapped(layersRoot, userNamespace: idMap.userNamespace) } catch { throw .system(error) }
        if umount2(path, Int32(MNT_DETACH)) != 0 { throw .system(.current("umount2", path: path)) }
        // The overlay resolves each /proc/self/fd/N/… path when it is mounted, and holds the layers from then on.
        let prefix = "/proc/self/fd/\(view.rawValue)/"
        try Self.mountOverlay(layers.map { prefix + $0.dropFirst(layersRoot.count + 1) }, rootfs: self)
    }

    /// Unmounts the overlay and deletes the instance's directory. Safe to call more than once.
    @discardableResult
    public func remove() -> SystemCallError? {
        guard removed.setOnce() else { return nil }
        for mounted in [path, directory] where FileSystem.isMountPoint(mounted) {
            if umount2(mounted, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
                return .current("umount2", path: mounted)
            }
        }
        do { try FileSystem.removeTree(directory) } catch { return error }
        return nil
    }

    private static func escape(_ path: String) -> String {
        path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
            .replacingOccurrences(of: ",", with: "\\,")
    }
}

/// How an instance's rootfs maps file owners: a user namespace (held by its descriptor; the sandbox makes it)
/// whose mapping applies to the stored layers, and the host id its root maps to.
public struct RootfsIDMap: Sendable {
    public let userNamespace: OwnedFileDescriptor
    public let hostRoot: UInt32
    public init(userNamespace: OwnedFileDescriptor, hostRoot: UInt32) {
        self.userNamespace = userNamespace
        self.hostRoot = hostRoot
    }
}

extension ImageStore {
    /// Makes `rootfs` (just composed for `image`, nothing run in it yet) read as owned by `idMap`'s ids inside:
    /// the image's files, stored as owned by host root, belong to the function's root.
    public func mapOwners(of rootfs: InstanceRootfs, image: PulledImage, to idMap: RootfsIDMap) throws(ImageError) {
        try rootfs.mapOwners(layers: image.layers.map(\.path), layersRoot: paths.layers, to: idMap)
    }

    /// The directory an instance's rootfs lives in.
    public func instanceDirectory(_ id: String) -> String { paths.instance(id) }

    /// The instances whose directories exist under the store: after a crash, those a dead faasbox left.
    public func instanceIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: paths.instances)) ?? []).sorted()
    }

    /// The rootfs of instance `id` as it is on disk (mounted or not): one a dead faasbox left, to `remove()`.
    public func instanceRootfs(_ id: String) -> InstanceRootfs {
        InstanceRootfs(directory: instanceDirectory(id))
    }

    /// Composes the rootfs of a new instance of `image`. Its layers are recorded as in use (the instance's
    /// `layers` list, which `gc` reads) under the store's lock, after checking they are still stored: a layer
    /// `gc` removed since the pull is an error here, never an empty mount.
    public func composeRootfs(_ image: PulledImage, instanceID: String) throws(ImageError) -> InstanceRootfs {
        let directory = instanceDirectory(instanceID)
        return try lock.withShared { () throws(ImageError) -> InstanceRootfs in
            if let gone = image.layers.first(where: { !FileSystem.exists($0.path) }) {
                throw .layerMissing(diffID: gone.diffID)
            }
            let rootfs = try InstanceRootfs.compose(image, in: directory)
            let list = image.layers.map { $0.path + "\n" }.joined()
            do throws(SystemCallError) {
                // gc reads it under the lock held exclusive, never while it is written: no temp file and rename.
                try FileSystem.writeNewFile(paths.instanceLayers(instanceID), Array(list.utf8))
            } catch {
                rootfs.remove()
                throw .system(error)
            }
            return rootfs
        }
    }
}
