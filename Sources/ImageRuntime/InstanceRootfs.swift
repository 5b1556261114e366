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
/// overlayfs, a hard-link farm of the layers).
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
            for sub in ["", "/rootfs", "/upper", "/work"] {
                if mkdir(directory + sub, 0o755) != 0 { throw SystemCallError.current("mkdir", path: directory + sub) }
            }
            if mode == .hardlinkFarm {
                try HardlinkFarm.apply(image.layers.map(\.path), into: rootfs.path)
                return rootfs
            }
            // overlayfs lists the top layer first.
            let lower = image.layers.reversed().map { escape($0.path) }.joined(separator: ":")
            let options = "lowerdir=\(lower),upperdir=\(escape(directory + "/upper")),workdir=\(escape(directory + "/work"))"
            if options.utf8.count >= 4096 {
                throw ImageError.limitExceeded("\(image.layers.count) layers: overlay options exceed a page")
            }
            if mount("overlay", rootfs.path, "overlay", UInt(MS_NODEV), options) != 0 {
                throw SystemCallError.current("mount(overlay)", path: rootfs.path)
            }
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

    /// Unmounts the overlay and deletes the instance's directory. Safe to call more than once.
    @discardableResult
    public func remove() -> SystemCallError? {
        guard removed.setOnce() else { return nil }
        if FileSystem.isMountPoint(path) && umount2(path, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            return .current("umount2", path: path)
        }
        do { try FileSystem.removeTree(directory) } catch { return error }
        return nil
    }

    private static func escape(_ path: String) -> String {
        path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
            .replacingOccurrences(of: ",", with: "\\,")
    }
}

extension ImageStore {
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
