#if canImport(Glibc)
    import Glibc
#endif

/// Whether a TCP address can be listened on now, asked before a server starts so that a taken port is a clear
/// error at once rather than one from deep in the server's start (after its other listeners began).
public enum TCPPort {
    /// Binds a socket to `host`:`port` the way a server does (SO_REUSEADDR: a connection left in TIME_WAIT does
    /// not count) and closes it; the error is bind's (EADDRINUSE: something listens there) or the name's.
    public static func checkFree(host: String, port: Int) -> SystemCallError? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, "\(port)", &hints, &found)
        guard rc == 0, let first = found else { return SystemCallError("getaddrinfo", path: host, errno: .noSuchAddressOrDevice) }
        defer { freeaddrinfo(found) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return .current("socket") }
        defer { close(fd) }
        var one: CInt = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 { return .current("bind", path: "\(host):\(port)") }
        return nil
    }
}
