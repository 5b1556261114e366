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
