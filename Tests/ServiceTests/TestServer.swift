import AsyncHTTPClient
import Foundation
import ImageRuntime
import Logging
import NIOCore
import NIOHTTP1
import TestSupport

@testable import Executor
@testable import Service

/// A `faasbox serve` for one test: in this process (`start`) or as a child process of the built binary
/// (`spawn`, for kill -9 and SIGTERM), on a free loopback port, with a state dir of its own.
final class TestServer: Sendable {
    let url: String
    let stateDir: String
    /// The port it listens on (127.0.0.1).
    var port: Int { Int(url.split(separator: ":").last ?? "") ?? 0 }
    private let task: Task<Void, any Error>?
    let process: Process?

    private init(url: String, stateDir: String, task: Task<Void, any Error>?, process: Process?) {
        self.url = url
        self.stateDir = stateDir
        self.task = task
        self.process = process
    }

    static func start(stateDir: String = TestPaths.temporaryDirectory("serve"), options: FunctionService.Options = fast)
        async throws -> TestServer
    {
        let store = try ImageStore(root: stateDir)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "test.serve")
        logger.logLevel = .warning
        let task = Task {
            defer { continuation.finish() }
            try await Server.run(
                store: store, host: "127.0.0.1", port: 0, options: options, logger: logger,
                onListening: { continuation.yield($0) })
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw TestServerError.didNotStart("the server ended before it listened")
        }
        return TestServer(url: "http://127.0.0.1:\(port)", stateDir: stateDir, task: task, process: nil)
    }

    /// Options that make the timed parts of the service quick enough for tests.
    static var fast: FunctionService.Options {
        var options = FunctionService.Options()
        options.maintenanceInterval = .milliseconds(200)
        options.policy.retryBackoff = .milliseconds(50)
        options.policy.throttleBackoff = .milliseconds(20)
        options.shutdownGrace = .seconds(10)
        return options
    }

    /// Starts `.build/debug/faasbox serve` and waits for its "listening on" line; with `openFiles`, under
    /// those soft and hard limits on open descriptors (prlimit(1)).
    static func spawn(stateDir: String, extraArguments: [String] = [], openFiles: (soft: Int, hard: Int)? = nil) throws
        -> TestServer
    {
        let binary = "\(TestPaths.packageRoot)/.build/debug/faasbox"
        let serve = ["serve", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--log-level", "warning"] + extraArguments
        let process = Process()
        if let openFiles {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--nofile=\(openFiles.soft):\(openFiles.hard)", "--", binary] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = serve
        }
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line: [UInt8] = []
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard let b = byte.first else { throw TestServerError.didNotStart("faasbox serve exited before it listened") }
            if b == UInt8(ascii: "\n") {
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("listening on "), let port = text.split(separator: ":").last {
                    return TestServer(url: "http://127.0.0.1:\(port)", stateDir: stateDir, task: nil, process: process)
                }
                line = []
            } else {
                line.append(b)
            }
        }
    }

    /// Stops the server gracefully (cancellation in process, SIGTERM for a child) and waits for it.
    func stop() async {
        if let task {
            task.cancel()
            _ = try? await task.value
        }
        if let process, process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    struct Answer {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var array: [Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [Any] ?? [] }
    }

    func call(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = [],
        timeout: TimeAmount = .seconds(60)
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let data = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(buffer: data))
    }

    /// Deploys `name` from a sample image with extra config fields; returns the answer.
    func deploy(_ name: String, image: String, _ fields: [String: Any] = [:]) async throws -> Answer {
        var spec: [String: Any] = ["image": TestPaths.sampleImage(image)]
        spec.merge(fields) { $1 }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        return try await call(.PUT, "/functions/\(name)", body: body)
    }

    func invoke(_ name: String, _ event: String = "{}", async: Bool = false, tail: Bool = false) async throws -> Answer {
        var headers = [("X-Scf-Invocation-Type", async ? "Event" : "RequestResponse")]
        if tail { headers.append(("X-Scf-Log-Type", "Tail")) }
        return try await call(.POST, "/functions/\(name)/invocations", body: event, headers: headers)
    }

    /// The instances of `name` the server lists.
    func instances(_ name: String) async throws -> [[String: Any]] {
        try await call(.GET, "/instances").json[name] as? [[String: Any]] ?? []
    }
}

enum TestServerError: Error { case didNotStart(String) }

extension TestServer.Answer {
    /// The function's return value (RetMsg) parsed as JSON.
    var returned: [String: Any] {
        guard let ret = json["RetMsg"] as? String else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(ret.utf8))) as? [String: Any] ?? [:]
    }
}
