import CSyscalls
import SystemPackage

/// An epoll instance watching descriptors for input, each under a token of the caller's (struct epoll_event
/// is packed, which Swift does not import well: the shim keeps it on the C side).
public final class Epoll: Sendable {
    private let descriptor: OwnedFileDescriptor

    public init() throws(SystemCallError) {
        let fd = fb_epoll_create()
        if fd < 0 { throw .negated("epoll_create1", fd) }
        descriptor = OwnedFileDescriptor(FileDescriptor(rawValue: fd))
    }

    /// Watches `fd` for input (level-triggered); `wait` returns `token` while it has some.
    public func add(_ fd: CInt, token: UInt64) throws(SystemCallError) {
        let rc = fb_epoll_add(descriptor.rawValue, fd, token)
        if rc != 0 { throw .negated("epoll_ctl(ADD)", rc) }
    }

    /// Stops watching `fd` (before it is closed).
    public func remove(_ fd: CInt) {
        _ = fb_epoll_del(descriptor.rawValue, fd)
    }

    /// Blocks until some watched descriptor has input (or `timeoutMilliseconds`, -1 for none, passes); writes
    /// the tokens of those ready into `tokens` (up to its count, at most 64) and returns how many. EINTR is
    /// retried.
    public func wait(into tokens: inout [UInt64], timeoutMilliseconds: CInt = -1) throws(SystemCallError) -> Int {
        let n = tokens.withUnsafeMutableBufferPointer {
            fb_epoll_wait(descriptor.rawValue, $0.baseAddress, CInt($0.count), timeoutMilliseconds)
        }
        if n < 0 { throw .negated("epoll_wait", n) }
        return Int(n)
    }
}
