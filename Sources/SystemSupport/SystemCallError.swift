import SystemPackage

/// A failed system call: which call, on which path (if any), and the errno it returned.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public let call: String
    public let path: String?
    public let errno: Errno

    public init(_ call: String, path: String? = nil, errno: Errno) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    /// The error for a C call that returned -1 and left the reason in `errno`.
    public static func current(_ call: String, path: String? = nil) -> SystemCallError {
        SystemCallError(call, path: path, errno: Errno(rawValue: Glibc.errno))
    }

    /// The error for a shim that returned `-errno`.
    public static func negated(_ call: String, path: String? = nil, _ result: CInt) -> SystemCallError {
        SystemCallError(call, path: path, errno: Errno(rawValue: -result))
    }

    public var description: String {
        let target = path.map { "(\($0))" } ?? ""
        return "\(call)\(target) failed: \(errno) (errno \(errno.rawValue))"
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
