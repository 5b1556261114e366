import ArgumentParser
import Executor
import Foundation
import Logging
import NIOCore
import NIOPosix
import Service

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve many functions over HTTP: deploy, sync and async invocation, web passthrough, logs, metrics.",
        discussion: """
            State (functions, the async queue, logs, the layer store) lives in the state dir; on start the server \
            removes instances a previous server left and runs again the async events it had in flight. SIGTERM or \
            SIGINT: new invocations are refused, those in flight get --grace seconds, then every instance stops.
            """)

    @Option(help: "HOST:PORT to listen on (port 0 picks a free one).")
    var listen = "127.0.0.1:9900"

    @Option(help: "Seconds in-flight invocations get to finish on SIGTERM.")
    var grace: Double = 10

    @Option(help: "Seconds before the first retry of a failed async event (doubling for the next).")
    var retryBackoff: Double = 1

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @OptionGroup var state: StateOptions

    func run() async throws {
        // Swift concurrency's jobs run on NIO's event loops instead of a pool of their own: a request's tasks stay
        // on the thread that reads its connection, with no thread hand-off per await (docs/benchmarks.md, "Warm
        // path"). First thing, before other concurrent work; where the runtime refuses (false), everything works
        // as before, only slower. Blocking work goes through `runBlocking`.
        let onEventLoops = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        raiseDescriptorLimit()
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen takes HOST:PORT, got '\(listen)'")
        }
        var logger = Logger(label: "faasbox.serve")
        logger.logLevel = logLevel
        logger.debug("concurrency on NIO's event loops: \(onEventLoops)")
        var options = FunctionService.Options()
        options.shutdownGrace = .milliseconds(Int(grace * 1000))
        options.policy.retryBackoff = .milliseconds(Int(retryBackoff * 1000))
        do {
            try await Server.run(
                store: state.openStore(), host: String(listen[..<colon]), port: port, options: options, logger: logger,
                onListening: { port in
                    // One line on stdout that scripts and tests wait for.
                    say("listening on \(listen[..<colon]):\(port)")
                })
        } catch let error as ServiceError {
            fail(error.description)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
