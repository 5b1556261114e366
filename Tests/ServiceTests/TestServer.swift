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
/// (`spawn`, for kill -9 and SIGTERM), with a state dir of its own, listening on a unix socket of its own and
/// on a free loopback port (where every request must be signed; the server's state dir has one key for it).
final class TestServer: Sendable {
    /// The TCP listener's base URL (`http://127.0.0.1:PORT`).
    let url: String
    /// The unix socket's path.
    let socket: String
    let stateDir: String
    /// A key that may sign requests on TCP.
    let credential: CredentialStore.Credential
    /// The port it listens on (127.0.0.1).
    var port: Int { Int(url.split(separator: ":").last ?? "") ?? 0 }
    private let task: Task<Void, any Error>?
    let process: Process?

    private init(
        url: String, socket: String, stateDir: String, credential: CredentialStore.Credential, task: Task<Void, any Error>?,
        process: Process?
    ) {
        self.url = url
        self.socket = socket
        self.stateDir = stateDir
        self.credential = credential
        self.task = task
        self.process = process
    }

    /// A socket path short enough for sun_path, beside (not in) the state dir.
    static func socketPath() -> String { "/tmp/faasbox-test-\(UInt32.random(in: 0...UInt32.max)).sock" }

    static func start(
        stateDir: String = TestPaths.temporaryDirectory("serve"), options: FunctionService.Options = fast,
        limits: ListenerLimits = ListenerLimits()
    ) async throws -> TestServer {
        let store = try ImageStore(root: stateDir)
        let credential = try CredentialStore(stateDir: stateDir).create()
        let socket = socketPath()
        let (endpoints, continuation) = AsyncStream<Server.Endpoint>.makeStream()
        var logger = Logger(label: "test.serve")
        logger.logLevel = .warning
        var listeners = Server.Listeners(socket: socket, tcp: ("127.0.0.1", 0))
        listeners.limits = limits
        let task = Task { [listeners] in
            defer { continuation.finish() }
            try await Server.run(
                store: store, listeners: listeners, options: options, logger: logger,
                onListening: { continuation.yield($0) })
        }
        var port: Int?
        var listening = false
        for await endpoint in endpoints {
            switch endpoint {
            case .socket: listening = true
            case .tcp(_, let bound): port = bound
            }
            if listening, port != nil { break }
        }
        guard let port, listening else {
            try await task.value
            throw TestServerError.didNotStart("the server ended before it listened")
        }
        return TestServer(
            url: "http://127.0.0.1:\(port)", socket: socket, stateDir: stateDir, credential: credential, task: task, process: nil)
    }

    /// Options that make the timed parts of the service quick enough for tests; the sample images' directory
    /// is an image root.
    static var fast: FunctionService.Options {
        var options = FunctionService.Options()
        options.maintenanceInterval = .milliseconds(200)
        options.policy.retryBackoff = .milliseconds(50)
        options.policy.throttleBackoff = .milliseconds(20)
        options.shutdownGrace = .seconds(10)
        options.host = HostPolicy(imageRoots: [TestPaths.imagesDirectory])
        return options
    }

    /// Starts `.build/debug/faasbox serve` and waits for its "listening on" lines; with `openFiles`, under
    /// those soft and hard limits on open descriptors (prlimit(1)).
    /// `errors`: a file that gets serve's stderr (its log), else the tests' own.
    static func spawn(
        stateDir: String, extraArguments: [String] = [], openFiles: (soft: Int, hard: Int)? = nil, errors: String? = nil
    ) throws -> TestServer {
        let binary = "\(TestPaths.packageRoot)/.build/debug/faasbox"
        let socket = socketPath()
        _ = try ImageStore(root: stateDir)
        let credentials = CredentialStore(stateDir: stateDir)
        let credential = try credentials.all().first ?? credentials.create()
        let serve =
            [
                "serve", "--socket", socket, "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--log-level", "warning",
                "--image-root", TestPaths.imagesDirectory,
            ] + extraArguments
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
        if let errors {
            FileManager.default.createFile(atPath: errors, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: errors)
        }
        try process.run()
        var line: [UInt8] = []
        var (listening, port) = (false, nil as Substring?)
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard let b = byte.first else { throw TestServerError.didNotStart("faasbox serve exited before it listened") }
            if b == UInt8(ascii: "\n") {
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("listening on unix://") {
                    listening = true
                } else if text.hasPrefix("listening on "), let p = text.split(separator: ":").last {
                    port = p
                }
                if listening, let port {
                    return TestServer(
                        url: "http://127.0.0.1:\(port)", socket: socket, stateDir: stateDir, credential: credential, task: nil,
                        process: process)
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

    /// A request on the unix socket (no signature: who may open the socket is the file's mode).
    func call(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = [],
        timeout: TimeAmount = .seconds(60)
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: URL(httpURLWithSocketPath: socket, uri: path)!.absoluteString)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let data = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(buffer: data))
    }

    /// How a request on TCP is signed.
    enum Signing {
        case none
        /// With this key; `timestamp` nil is now, `tamper` changes the body after signing.
        case key(id: String, secret: String, timestamp: Int? = nil, tamper: Bool = false)
    }

    /// The test server's own key.
    var signed: Signing { .key(id: credential.SecretId, secret: credential.SecretKey) }

    /// A request on the TCP listener, signed as `signing` says (TC3-HMAC-SHA256 over content-type and host).
    func callTCP(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, signing: Signing, headers: [(String, String)] = [],
        contentType: String = "application/json", timeout: TimeAmount = .seconds(60)
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url + path)
        request.method = method
        let host = "127.0.0.1:\(port)"
        request.headers.add(name: "Host", value: host)
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        var sent = body ?? []
        if case .key(let id, let secret, let timestamp, let tamper) = signing {
            let (pathPart, query) =
                path.firstIndex(of: "?").map { (String(path[..<$0]), String(path[path.index(after: $0)...])) } ?? (path, "")
            let ts = timestamp ?? Int(Date().timeIntervalSince1970)
            let toSign = TC3Signature.Request(
                method: method.rawValue, path: pathPart, query: query, headers: [("content-type", contentType), ("host", host)],
                payloadHash: headers.first { $0.0.lowercased() == "x-tc-content-sha256" }?.1 ?? TC3Signature.sha256Hex(sent))
            request.headers.add(name: "X-TC-Timestamp", value: "\(ts)")
            request.headers.add(
                name: "Authorization", value: TC3Signature.authorization(toSign, timestamp: ts, secretID: id, secretKey: secret))
            if tamper { sent = Array("{\"tampered\": true}".utf8) }
        }
        if body != nil || !sent.isEmpty { request.body = .bytes(ByteBuffer(bytes: sent)) }
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
