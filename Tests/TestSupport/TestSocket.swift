import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Raw client sockets for tests that play a misbehaving caller (silent, slow, not reading). Every wait is off
/// the cooperative pool (`runBlocking`): a blocking receive there stalls every other test of the run.
public enum TestSocket {
    /// A TCP connection to 127.0.0.1:`port`, its receives giving up after `timeout` seconds.
    public static func connect(port: UInt16, timeout: Int = 15) throws -> OwnedFileDescriptor {
        let socket = OwnedFileDescriptor(rawValue: Glibc.socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0))
        try LoopbackSocket.connect(socket, port: port)
        setReceiveTimeout(socket, timeout)
        return socket
    }

    /// A connection to the unix socket at `path`.
    public static func connect(unix path: String, timeout: Int = 15) throws -> OwnedFileDescriptor {
        let socket = OwnedFileDescriptor(rawValue: Glibc.socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 { throw SystemCallError.current("connect", path: path) }
        setReceiveTimeout(socket, timeout)
        return socket
    }

    private static func setReceiveTimeout(_ socket: OwnedFileDescriptor, _ seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends `text` as it is (no wait: the socket's buffer takes it).
    public static func send(_ socket: OwnedFileDescriptor, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Whether the server closed `socket` (EOF or reset), after whatever it answered, within the receive timeout.
    public static func closedByServer(_ socket: OwnedFileDescriptor) async -> Bool {
        await runBlocking { () -> Bool in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(socket.rawValue, $0.baseAddress, $0.count, 0) }
                if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
                if n < 0 { return false }
            }
        }
    }
}
