import CSandbox
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A network namespace made before the sandbox, with only `lo`, up. faasbox can listen inside it before the
/// program starts (the runtime API of event-loop functions); `SandboxSpec.NetworkMode.namespace` starts the
/// program in it. The namespace lives while this value or a process in it does.
public final class NetworkNamespace: Sendable, Equatable {
    let descriptor: OwnedFileDescriptor

    public init() throws(SandboxError) {
        let fd = fb_netns_create()
        if fd < 0 { throw .syscall(.negated("unshare(CLONE_NEWNET)", fd)) }
        descriptor = OwnedFileDescriptor(.init(rawValue: fd))
    }

    /// A TCP socket listening on 127.0.0.1:`port` inside the namespace (close-on-exec, blocking).
    public func listen(port: UInt16, backlog: CInt = 128) throws(SandboxError) -> OwnedFileDescriptor {
        let fd = fb_socket_in_netns(descriptor.rawValue, AF_INET, CInt(SOCK_STREAM.rawValue))
        if fd < 0 { throw .syscall(.negated("socket in a network namespace", fd)) }
        let socket = OwnedFileDescriptor(.init(rawValue: fd))
        _ = try Self.bindLoopback(socket, port: port, backlog: backlog)
        return socket
    }

    /// A TCP connection to 127.0.0.1:`port` inside the namespace (blocking socket). Throws ECONNREFUSED while
    /// nothing listens there.
    public func connect(port: UInt16) throws(SandboxError) -> OwnedFileDescriptor {
        let fd = fb_socket_in_netns(descriptor.rawValue, AF_INET, CInt(SOCK_STREAM.rawValue))
        if fd < 0 { throw .syscall(.negated("socket in a network namespace", fd)) }
        let socket = OwnedFileDescriptor(.init(rawValue: fd))
        try Self.connectLoopback(socket, port: port)
        return socket
    }

    /// A path other programs (runc) can open to join the namespace, while this value lives.
    public var path: String { "/proc/\(getpid())/fd/\(descriptor.rawValue)" }

    /// A TCP socket listening on the host's 127.0.0.1:`port` (0: any free port), and the port it got.
    public static func listenOnHost(port: UInt16 = 0, backlog: CInt = 128) throws(SandboxError) -> (OwnedFileDescriptor, UInt16) {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .syscall(.current("socket")) }
        let socket = OwnedFileDescriptor(.init(rawValue: fd))
        return (socket, try bindLoopback(socket, port: port, backlog: backlog))
    }

    private static func bindLoopback(_ socket: OwnedFileDescriptor, port: UInt16, backlog: CInt) throws(SandboxError) -> UInt16 {
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
        if !ok { throw .syscall(.current("bind/listen", path: "127.0.0.1:\(port)")) }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Connects `socket` (a TCP socket, in whichever network namespace it was made) to 127.0.0.1:`port`.
    static func connectLoopback(_ socket: OwnedFileDescriptor, port: UInt16) throws(SandboxError) {
        var address = loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket.rawValue, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 { throw .syscall(.current("connect", path: "127.0.0.1:\(port)")) }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    public static func == (a: NetworkNamespace, b: NetworkNamespace) -> Bool { a === b }
}
