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

    /// Blocks until some watched descriptor has input (or `timeoutMilliseconds`, -1 for none, passes), calls
    /// `ready` with the token of each one that has (at most 64 a call) and returns how many. EINTR is retried.
    /// The tokens land in a buffer on the stack: a loop of waits allocates nothing. (An `inout [UInt64]` here,
    /// sliced by the caller's loop, had the release build copy the array on every wait and leak the copy:
    /// ~11 % of a function's output bytes stayed in serve's heap, 100 MB per 1 GiB.)
    public func wait(timeoutMilliseconds: CInt = -1, _ ready: (UInt64) -> Void) throws(SystemCallError) -> Int {
        let n = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 64) { tokens -> CInt in
            let n = fb_epoll_wait(descriptor.rawValue, tokens.baseAddress, CInt(tokens.count), timeoutMilliseconds)
            for index in 0..<Int(max(0, n)) { ready(tokens[index]) }
            return n
        }
        if n < 0 { throw .negated("epoll_wait", n) }
        return Int(n)
    }
}
