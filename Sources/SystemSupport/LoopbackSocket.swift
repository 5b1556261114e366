import CSyscalls

#if canImport(Glibc)
    import Glibc
#endif

/// TCP on 127.0.0.1: listening and connecting sockets, in whichever network namespace the socket was made.
public enum LoopbackSocket {
    /// The inode of the socket of the TCP connection from 127.0.0.1:`sourcePort` to 127.0.0.1:`destinationPort`
    /// in this network namespace (its `socket:[inode]` in /proc/PID/fd), looked up exactly with sock_diag.
    public static func inode(fromPort sourcePort: UInt16, toPort destinationPort: UInt16) throws(SystemCallError) -> UInt64 {
        var inode: UInt64 = 0
        let rc = fb_loopback_tcp_inode(sourcePort, destinationPort, &inode)
        if rc < 0 { throw .negated("sock_diag", path: "127.0.0.1:\(sourcePort) → 127.0.0.1:\(destinationPort)", rc) }
        return inode
    }

    /// A TCP socket listening on the current network namespace's 127.0.0.1:`port` (0: any free port), and the
    /// port it got.
    public static func listen(port: UInt16 = 0, backlog: CInt = 128) throws(SystemCallError) -> (OwnedFileDescriptor, UInt16) {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .current("socket") }
        let socket = OwnedFileDescriptor(rawValue: fd)
        return (socket, try listen(socket, port: port, backlog: backlog))
    }

    /// Binds `socket` (a TCP socket) to 127.0.0.1:`port` and listens; returns the port it got.
    public static func listen(_ socket: OwnedFileDescriptor, port: UInt16, backlog: CInt) throws(SystemCallError) -> UInt16 {
        var one: CInt = 1
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = loopback(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket.rawValue, $0, length) == 0 && Glibc.listen(socket.rawValue, backlog) == 0
                    && getsockname(socket.rawValue, $0, &length) == 0
            }
        }
        if !ok { throw .current("bind/listen", path: "127.0.0.1:\(port)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Connects `socket` (a TCP socket) to 127.0.0.1:`port`.
    public static func connect(_ socket: OwnedFileDescriptor, port: UInt16) throws(SystemCallError) {
        var address = loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket.rawValue, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 { throw .current("connect", path: "127.0.0.1:\(port)") }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
