import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Why `faasbox serve` could not start.
public enum ServerStartError: Error, Sendable, CustomStringConvertible {
    case socketInUse(String)
    case socketPath(String, String)

    public var description: String {
        switch self {
        case .socketInUse(let path): return "another faasbox serve is listening on \(path); stop it or choose another --socket"
        case .socketPath(let path, let why): return "--socket \(path): \(why)"
        }
    }
}

/// The service's unix socket, as dockerd's: mode 0660, owner root, group `faasbox` when that group exists
/// (0600 otherwise), in a directory of mode 0755. It is bound in a private directory (0700) and only renamed
/// into place once its mode and owner are set, so no one can connect in between whatever the umask.
final class UnixSocketListener: Sendable {
    static let group = "faasbox"

    let path: String
    /// Where it is bound before `publish` renames it to `path`.
    let bindPath: String
    private let privateDirectory: String
    private let groupID: gid_t?

    init(path: String) throws {
        guard path.hasPrefix("/") else { throw ServerStartError.socketPath(path, "must be an absolute path") }
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        privateDirectory = "\(directory)/.faasbox-serve-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        bindPath = "\(privateDirectory)/sock"
        // sun_path holds 108 bytes with the terminating NUL.
        if bindPath.utf8.count > 107 || path.utf8.count > 107 {
            throw ServerStartError.socketPath(path, "too long for a unix socket (at most about 80 characters)")
        }
        groupID = getgrnam(Self.group).map { $0.pointee.gr_gid }
        if !FileSystem.exists(directory) {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw ServerStartError.socketPath(path, "exists and is not a socket; not removing it")
            }
            if Self.isListening(path) { throw ServerStartError.socketInUse(path) }
            unlink(path)  // a stale socket: its server is gone
        }
        try? FileSystem.removeTree(privateDirectory)
        if mkdir(privateDirectory, 0o700) != 0 { throw SystemCallError.current("mkdir", path: privateDirectory) }
    }

    /// "0660 root:faasbox" or "0600 root".
    var access: String { groupID == nil ? "0600 root" : "0660 root:\(Self.group)" }

    /// Sets the bound socket's owner and mode, then moves it to `path`.
    func publish() throws {
        if chown(bindPath, 0, groupID ?? 0) != 0 { throw SystemCallError.current("chown", path: bindPath) }
        if chmod(bindPath, groupID == nil ? 0o600 : 0o660) != 0 { throw SystemCallError.current("chmod", path: bindPath) }
        if rename(bindPath, path) != 0 { throw SystemCallError.current("rename", path: path) }
        rmdir(privateDirectory)
    }

    /// Removes the socket (at shutdown).
    func remove() {
        unlink(path)
        try? FileSystem.removeTree(privateDirectory)
    }

    /// Whether something accepts connections on the socket at `path`.
    static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
