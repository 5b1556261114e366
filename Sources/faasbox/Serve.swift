import ArgumentParser
import Bootstrap
import Executor
import Foundation
import Logging
import NIOCore
import NIOPosix
import Service
import SystemSupport

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve many functions over HTTP: deploy, sync and async invocation, web passthrough, logs, metrics.",
        discussion: """
            State (functions, the async queue, logs, the layer store) lives in the state dir; on start the server \
            removes instances a previous server left and runs again the async events it had in flight. SIGTERM or \
            SIGINT: new invocations are refused, those in flight get --grace seconds, then every instance stops.
            """)

    @Option(help: "The unix socket to listen on (mode 0660, group faasbox when it exists, else 0600).")
    var socket = Server.defaultSocket

    @Option(
        help:
            "Also listen on TCP HOST:PORT (port 0 picks a free one); every request there must be signed (TC3-HMAC-SHA256, keys from `faasbox credentials create`)."
    )
    var listen: String?

    @Flag(help: "Serve /metrics on TCP without a signature.")
    var metricsPublic = false

    @Option(help: "A host directory whose subtree functions may mount (repeatable); none by default.")
    var allowMount: [String] = []

    @Flag(help: "Let functions use the host's network (\"network\": \"host\"); refused by default.")
    var allowHostNetwork = false

    @Option(
        help: "A host directory whose image archives functions may name (repeatable); by default only uploaded images (sha256:…)."
    )
    var imageRoot: [String] = []

    @Option(help: "Seconds in-flight invocations get to finish on SIGTERM.")
    var grace: Double = 10

    @Option(help: "Seconds before the first retry of a failed async event (doubling for the next).")
    var retryBackoff: Double = 1

    @Option(help: "Connections each listener keeps open at once; past it a request is answered 503.")
    var maxConnections = ListenerLimits().maxConnections

    @Option(help: "Seconds a connection may wait to complete its next request's head, or pause within a body.")
    var clientTimeout: Double = 30

    @Option(help: "MB of stored invocation logs per function (the oldest go first).")
    var functionLogsMB: Int = 64

    @Option(help: "MB of stored invocation logs in all.")
    var totalLogsMB: Int = 512

    @Option(
        help:
            "MB of free space on the state dir's filesystem below which logs are not stored (a tenth of a smaller filesystem)."
    )
    var logReserveMB: Int = 64

    @Option(
        help: ArgumentHelp(
            "Milliseconds an instance is idle before it is frozen (no CPU until its next call thaws it), or never.",
            valueName: "ms|never"))
    var freezeIdleAfter = FreezeDelay(SCFContract.defaultFreezeIdleAfter)

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @OptionGroup var state: StateOptions

    func run() async throws {
        // Swift concurrency's jobs run on NIO's event loops instead of a pool of their own: a request's tasks stay
        // on the thread that reads its connection, with no thread hand-off per await (docs/benchmarks.md, "Warm
        // path"). First thing, before other concurrent work; where the runtime refuses (false), everything works
        // as before, only slower. Blocking work goes through `runBlocking`.
        let onEventLoops = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        requireRoot("serve")
        raiseDescriptorLimit()
        var tcp: (host: String, port: Int)?
        if let listen {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw ValidationError("--listen takes HOST:PORT with a port 0–65535, got '\(listen)'") }
            let host = String(listen[..<colon])
            tcp = (host.isEmpty ? "127.0.0.1" : host, port)
        }
        if let tcp, let error = TCPPort.checkFree(host: tcp.host, port: tcp.port) {
            if error.errno == .addressInUse { fail("\(tcp.host):\(tcp.port) is already in use; choose another with --listen") }
            fail("cannot listen on \(tcp.host):\(tcp.port): \(error)")
        }
        for dir in allowMount + imageRoot where !FileManager.default.fileExists(atPath: dir) {
            throw ValidationError("\(dir) does not exist (--allow-mount and --image-root take existing directories)")
        }
        var logger = Logger(label: "faasbox.serve")
        logger.logLevel = logLevel
        logger.debug("concurrency on NIO's event loops: \(onEventLoops)")
        var options = FunctionService.Options()
        options.shutdownGrace = .milliseconds(Int(grace * 1000))
        options.policy.retryBackoff = .milliseconds(Int(retryBackoff * 1000))
        options.host = HostPolicy(mountRoots: allowMount, hostNetwork: allowHostNetwork, imageRoots: imageRoot)
        guard maxConnections > 0, clientTimeout > 0, functionLogsMB > 0, totalLogsMB > 0, logReserveMB >= 0 else {
            throw ValidationError(
                "--max-connections, --client-timeout, --function-logs-mb and --total-logs-mb must be positive")
        }
        options.freezeIdleAfter = freezeIdleAfter.delay
        options.logs.functionBytes = Int64(functionLogsMB) << 20
        options.logs.totalBytes = Int64(totalLogsMB) << 20
        options.logs.freeSpaceReserve = Int64(logReserveMB) << 20
        var listeners = Server.Listeners(socket: socket, tcp: tcp, metricsPublic: metricsPublic)
        listeners.limits.maxConnections = maxConnections
        listeners.limits.idleTimeout = .milliseconds(Int64(clientTimeout * 1000))
        listeners.limits.bodyTimeout = .milliseconds(Int64(clientTimeout * 1000))
        do {
            try await Server.run(
                store: state.openStore(), listeners: listeners, options: options, logger: logger,
                onListening: { endpoint in
                    // One line on stdout per listener, that scripts and tests wait for.
                    switch endpoint {
                    case .socket(let path): say("listening on unix://\(path)")
                    case .tcp(let host, let port): say("listening on \(host):\(port)")
                    }
                })
        } catch let error as ServiceError {
            fail(error.description)
        } catch let error as ServerStartError {
            fail(error.description)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--freeze-idle-after`: milliseconds (0 and up), or `never`.
struct FreezeDelay: ExpressibleByArgument {
    let delay: Duration?

    init(_ delay: Duration?) { self.delay = delay }

    init?(argument: String) {
        if argument == "never" {
            delay = nil
        } else if let ms = Int(argument), ms >= 0 {
            delay = .milliseconds(ms)
        } else {
            return nil
        }
    }

    var defaultValueDescription: String { delay.map { "\(Int($0.milliseconds))" } ?? "never" }
}
