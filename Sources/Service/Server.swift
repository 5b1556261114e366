import Bootstrap
import Executor
import Foundation
import Hummingbird
import HummingbirdCore
import ImageRuntime
import Logging
import NIOCore
import ServiceLifecycle

/// `faasbox serve`: takes the state dir's lock, cleans what a dead predecessor left, opens the service and
/// serves the API until SIGTERM/SIGINT (or cancellation), then shuts down gracefully: new invocations are
/// refused (503), those in flight get the grace period, every instance is stopped, the logs written out.
///
/// Two front doors onto the same API: a unix socket (always; who may open it is decided by its file mode and
/// group, as for dockerd), and a TCP listener only when asked, on which every request is signed.
public enum Server {
    /// Where `faasbox serve` listens, and the client commands talk, by default.
    public static let defaultSocket = "/run/faasbox/faasbox.sock"

    public struct Listeners: Sendable {
        /// The unix socket's path.
        public var socket: String
        /// TCP HOST and PORT (port 0: a free one), or none.
        public var tcp: (host: String, port: Int)?
        /// `/metrics` on TCP without a signature.
        public var metricsPublic = false
        /// Each listener's connection cap and timeouts.
        public var limits = ListenerLimits()

        public init(socket: String, tcp: (host: String, port: Int)? = nil, metricsPublic: Bool = false) {
            self.socket = socket
            self.tcp = tcp
            self.metricsPublic = metricsPublic
        }
    }

    /// Where the server listens, once it does.
    public enum Endpoint: Sendable, Equatable {
        case socket(String)
        case tcp(host: String, port: Int)
    }

    public static func run(
        store: ImageStore, listeners: Listeners, options: FunctionService.Options = .init(), logger: Logger,
        onListening: @escaping @Sendable (Endpoint) -> Void = { _ in }
    ) async throws {
        let lock = try StateDirLock(stateDir: store.root)
        let socket = try UnixSocketListener(path: listeners.socket)
        let cleaned = await FunctionInstance.removeLeftovers(store: store)
        if !cleaned.isEmpty { logger.notice("removed \(cleaned.count) instances left by an earlier faasbox") }
        let service = try await FunctionService.open(store: store, options: options, logger: logger)
        let (socketBudget, tcpBudget) = (ConnectionBudget(listeners.limits), ConnectionBudget(listeners.limits))
        var services: [any Service] = [
            Application(
                router: ServiceAPI.router(service),
                server: HTTPServerBuilder { responder in
                    WebFrontedHTTP1Channel(
                        base: HTTP1Channel(responder: responder), service: service, verifier: nil, budget: socketBudget)
                },
                configuration: .init(address: .unixDomainSocket(path: socket.bindPath), serverName: nil),
                onServerRunning: { _ in
                    do {
                        try socket.publish()
                        logger.notice("faasbox serve listening on \(socket.path) (\(socket.access)), state in \(store.root)")
                        onListening(.socket(socket.path))
                    } catch {
                        logger.error("cannot put the socket in place at \(socket.path): \(error)")
                    }
                },
                logger: logger)
        ]
        if let tcp = listeners.tcp {
            let verifier = RequestVerifier(credentials: CredentialStore(stateDir: store.root))
            services.append(
                Application(
                    router: ServiceAPI.router(service, verifier: verifier, metricsPublic: listeners.metricsPublic),
                    server: HTTPServerBuilder { responder in
                        WebFrontedHTTP1Channel(
                            base: HTTP1Channel(responder: responder), service: service, verifier: verifier,
                            budget: tcpBudget)
                    },
                    configuration: .init(address: .hostname(tcp.host, port: tcp.port), serverName: nil),
                    onServerRunning: { channel in
                        let bound = channel.localAddress?.port ?? tcp.port
                        logger.notice("faasbox serve listening on \(tcp.host):\(bound) (every request signed)")
                        onListening(.tcp(host: tcp.host, port: bound))
                    },
                    logger: logger))
        }
        services.append(ExecutorLoops(service: service))
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { socket.remove() }
        try await group.run()
        withExtendedLifetime(lock) {}
    }
}

/// The dispatcher and upkeep loops as a service; on graceful shutdown (or cancellation) they stop and the
/// service drains its instances. Listed after the HTTP servers, it is shut down before them.
struct ExecutorLoops: Service {
    let service: FunctionService

    func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask { await service.runDispatcher() }
                    group.addTask { await service.runMaintenance() }
                }
            } onGracefulShutdown: {
                service.beginShutdown()
            }
        } onCancel: {
            service.beginShutdown()
        }
        await service.shutdown()
    }
}
