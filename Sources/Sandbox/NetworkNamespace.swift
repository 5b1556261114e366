import CSpawn
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
        do { _ = try LoopbackSocket.listen(socket, port: port, backlog: backlog) } catch { throw .syscall(error) }
        return socket
    }

    /// A TCP connection to 127.0.0.1:`port` inside the namespace (blocking socket). Throws ECONNREFUSED while
    /// nothing listens there.
    public func connect(port: UInt16) throws(SandboxError) -> OwnedFileDescriptor {
        let fd = fb_socket_in_netns(descriptor.rawValue, AF_INET, CInt(SOCK_STREAM.rawValue))
        if fd < 0 { throw .syscall(.negated("socket in a network namespace", fd)) }
        let socket = OwnedFileDescriptor(.init(rawValue: fd))
        do { try LoopbackSocket.connect(socket, port: port) } catch { throw .syscall(error) }
        return socket
    }

    /// A path other programs (runc) can open to join the namespace, while this value lives.
    public var path: String { "/proc/\(getpid())/fd/\(descriptor.rawValue)" }

    /// A TCP socket listening on the host's 127.0.0.1:`port` (0: any free port), and the port it got.
    public static func listenOnHost(port: UInt16 = 0, backlog: CInt = 128) throws(SandboxError) -> (OwnedFileDescriptor, UInt16) {
        do { return try LoopbackSocket.listen(port: port, backlog: backlog) } catch { throw .syscall(error) }
    }

    public static func == (a: NetworkNamespace, b: NetworkNamespace) -> Bool { a === b }
}
