import CSyscalls
import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A file descriptor with one owner: it is closed when the owner goes away, or by `close()`, once.
public final class OwnedFileDescriptor: Sendable {
    public let fd: FileDescriptor
    private let closed = AtomicFlag()

    public init(_ fd: FileDescriptor) { self.fd = fd }
    public convenience init(rawValue: CInt) { self.init(FileDescriptor(rawValue: rawValue)) }

    public var rawValue: CInt { fd.rawValue }

    /// Closes the descriptor now; later calls and the deinit do nothing.
    public func close() {
        if closed.setOnce() { try? fd.close() }
    }

    deinit { close() }

    /// Opens `path` (close-on-exec).
    public static func open(_ path: String, _ flags: CInt, mode: mode_t = 0) throws(SystemCallError) -> OwnedFileDescriptor {
        let fd = Syscall.retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if fd < 0 { throw .current("open", path: path) }
        return OwnedFileDescriptor(FileDescriptor(rawValue: fd))
    }

    /// Opens `path` as if `root` were `/`: symlinks and `..` resolve within it, magic links (/proc/…/fd) are
    /// refused (openat2 with RESOLVE_IN_ROOT): for files of an image's rootfs, which the image controls.
    public static func open(_ path: String, inRoot root: String, _ flags: CInt) throws(SystemCallError) -> OwnedFileDescriptor {
        let directory = try open(root, O_PATH_FLAG | O_DIRECTORY)
        return try openat2(directory.fd, path, flags: flags, resolve: Resolve.inRoot | Resolve.noMagicLinks)
    }

    /// Opens `path` relative to `directory` with openat2(2) and the given RESOLVE_* flags.
    public static func openat2(
        _ directory: FileDescriptor, _ path: String, flags: CInt, mode: mode_t = 0, resolve: UInt64
    ) throws(SystemCallError) -> OwnedFileDescriptor {
        let fd = fb_openat2(directory.rawValue, path, flags | O_CLOEXEC, UInt32(mode), resolve)
        if fd < 0 { throw .negated("openat2", path: path, fd) }
        return OwnedFileDescriptor(FileDescriptor(rawValue: fd))
    }

    /// A pipe whose both ends close on exec.
    public static func pipe() throws(SystemCallError) -> (read: OwnedFileDescriptor, write: OwnedFileDescriptor) {
        var fds: [CInt] = [-1, -1]
        let rc = fb_pipe_cloexec(&fds)
        if rc != 0 { throw .negated("pipe2", rc) }
        return (OwnedFileDescriptor(FileDescriptor(rawValue: fds[0])), OwnedFileDescriptor(FileDescriptor(rawValue: fds[1])))
    }

    /// Reads until EOF (retrying EINTR), at most `limit` bytes.
    public func readToEnd(limit: Int = .max) throws(SystemCallError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = Syscall.retrying {
                chunk.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, min($0.count, limit - out.count)) }
            }
            if n < 0 { throw .current("read") }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

/// RESOLVE_* flags of openat2(2).
public enum Resolve {
    public static let noXDev: UInt64 = 0x01
    public static let noMagicLinks: UInt64 = 0x02
    public static let noSymlinks: UInt64 = 0x04
    public static let beneath: UInt64 = 0x08
    public static let inRoot: UInt64 = 0x10
}

/// O_PATH, which Glibc's Swift overlay does not export.
public let O_PATH_FLAG: CInt = 0o10000000

extension OwnedFileDescriptor {
    /// The path the kernel gives this descriptor (/proc/self/fd's link): where an opened file really is.
    public func resolvedPath() throws(SystemCallError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(rawValue)", &buffer, buffer.count - 1)
        if n < 0 { throw .current("readlink", path: "/proc/self/fd/\(rawValue)") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Opens `path` (absolute) only if it lies beneath `root` once every symlink is followed: openat2 with
    /// RESOLVE_BENEATH from `root`, so a link (or `..`) that leads out of it is refused with EXDEV.
    public static func open(_ path: String, beneath root: String, _ flags: CInt) throws(SystemCallError) -> OwnedFileDescriptor {
        let base = root.hasSuffix("/") ? root : root + "/"
        guard path == root || path.hasPrefix(base) else { throw SystemCallError("openat2", path: path, errno: .improperLink) }
        let relative = path == root ? "." : String(path.dropFirst(base.count))
        let directory = try open(root, O_PATH_FLAG | O_DIRECTORY)
        return try openat2(directory.fd, relative, flags: flags, resolve: Resolve.beneath | Resolve.noMagicLinks)
    }
}

/// A detached copy of a mount tree (open_tree OPEN_TREE_CLONE): attributes set on it with `setAttributes`
/// cover every mount in it, and it can be attached in another mount namespace (move_mount), which a plain
/// descriptor of a directory in this one cannot be bound from.
public enum DetachedMount {
    public static let readOnly: UInt64 = 0x1
    public static let noSUID: UInt64 = 0x2
    public static let noDev: UInt64 = 0x4

    /// The tree at `directory` (and every mount below it), detached.
    public static func clone(_ directory: OwnedFileDescriptor, path: String) throws(SystemCallError) -> OwnedFileDescriptor {
        let fd = fb_open_tree_clone(directory.rawValue)
        if fd < 0 { throw .negated("open_tree", path: path, fd) }
        return OwnedFileDescriptor(rawValue: fd)
    }

    /// The mount at `path` (without the mounts below it), detached and idmapped with the mapping of the user
    /// namespace `userNamespace` (MOUNT_ATTR_IDMAP): its files show as owned by the ids that mapping gives
    /// their stored owners, and files made through it are stored with the ids mapped back.
    public static func idmapped(_ path: String, userNamespace: OwnedFileDescriptor) throws(SystemCallError)
        -> OwnedFileDescriptor
    {
        let fd = fb_open_tree_idmapped(path, userNamespace.rawValue)
        if fd < 0 { throw .negated("open_tree/mount_setattr(MOUNT_ATTR_IDMAP)", path: path, fd) }
        return OwnedFileDescriptor(rawValue: fd)
    }

    /// Attaches a detached tree at `path` (move_mount), over whatever is mounted there.
    public static func attach(_ tree: OwnedFileDescriptor, at path: String) throws(SystemCallError) {
        let rc = fb_move_mount_to(tree.rawValue, path)
        if rc < 0 { throw .negated("move_mount", path: path, rc) }
    }

    /// Sets MOUNT_ATTR_* `flags` on every mount of the tree.
    public static func setAttributes(_ tree: OwnedFileDescriptor, _ flags: UInt64, path: String) throws(SystemCallError) {
        let rc = fb_mount_setattr_recursive(tree.rawValue, flags)
        if rc < 0 { throw .negated("mount_setattr", path: path, rc) }
    }
}
