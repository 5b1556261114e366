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
public enum Server {
    public static func run(
        store: ImageStore, host: String, port: Int, options: FunctionService.Options = .init(), logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        let lock = try StateDirLock(stateDir: store.root)
        let cleaned = await FunctionInstance.removeLeftovers(store: store)
        if !cleaned.isEmpty { logger.notice("removed \(cleaned.count) instances left by an earlier faasbox") }
        let service = try await FunctionService.open(store: store, options: options, logger: logger)
        let app = Application(
            router: ServiceAPI.router(service),
            server: HTTPServerBuilder { responder in
                WebFrontedHTTP1Channel(base: HTTP1Channel(responder: responder), service: service)
            },
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.notice("faasbox serve listening on \(host):\(bound), state in \(store.root)")
                onListening(bound)
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [app, ExecutorLoops(service: service)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        withExtendedLifetime(lock) {}
    }
}

/// The dispatcher and upkeep loops as a service; on graceful shutdown (or cancellation) they stop and the
/// service drains its instances. Listed after the HTTP server, it is shut down before it.
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
