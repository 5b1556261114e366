import Bootstrap
import Executor
import Foundation
import ImageRuntime
import Sandbox
import SystemSupport
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Custom-runtime event functions: the runtime API faasbox serves inside the instance (contract §3).
@Suite struct RuntimeAPITests {
    let state = TestPaths.temporaryDirectory("runtime")

    @Test func theBusyboxEventLoopAnswersAndItsStateSurvivesBetweenInvocations() async throws {
        let store = try ImageStore(root: state)
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: store, config: config())
        #expect(instance.protocolKind == .runtimeAPI)
        #expect(instance.timings.initFunction > .zero)
        for count in 1...3 {
            let id = "req-\(count)"
            let response = try await instance.invokeEvent(Array(#"{"n":\#(count)}"#.utf8), requestID: id, timeout: .seconds(30))
            let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            #expect(body["requestId"] as? String == id, "the request_id header reached the function")
            #expect(body["count"] as? Int == count, "the same process answered every time")
            #expect((body["event"] as? [String: Int]) == ["n": count])
        }
        let log = instance.output.text
        #expect(log.contains("runtime API 127.0.0.1:9001"), "SCF_RUNTIME_API and SCF_RUNTIME_API_PORT are set: \(log)")
        #expect(log.contains("handler index.main_handler"), "_HANDLER is set")
        #expect(log.contains("(request req-2, 30000 ms)"), "time_limit_in_ms is the invocation's timeout")
        for count in 1...3 {
            let own = instance.output.lines(for: "req-\(count)").map(\.text)
            #expect(own == ["hello-runtime: invocation \(count) (request req-\(count), 30000 ms)"], "attributed: \(own)")
        }
        #expect(
            instance.output.lines(for: "req-1", includingInit: true).first?.text.hasPrefix("hello-runtime: initialising") == true)
        await instance.stop()
    }

    @Test func anErrorPostedByTheFunctionIs430AndTheInstanceKeepsServing() async throws {
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config())
        await #expect {
            _ = try await instance.invokeEvent(Array(#"{"fail":true}"#.utf8), requestID: "bad", timeout: .seconds(30))
        } throws: { error in
            guard let e = error as? BootstrapError, case .functionError(let message) = e else { return false }
            return e.code == .userCodeError && message.contains("asked to fail")
        }
        let response = try await instance.invokeEvent(Array("{}".utf8), requestID: "good", timeout: .seconds(30))
        #expect(response.bodyText.contains(#""requestId":"good""#))
        await instance.stop()
    }

    @Test func aRuntimeThatExitsMidInvocationIs439AndTheNextColdStartWorks() async throws {
        let store = try ImageStore(root: state)
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: store, config: config())
        await #expect {
            _ = try await instance.invokeEvent(Array(#"{"crash":true}"#.utf8), requestID: "c", timeout: .seconds(30))
        } throws: { error in
            guard let e = error as? BootstrapError, case .invocationFailed(let message) = e else { return false }
            return e.code == .userProcessExited && message.contains("exited with status 3")
        }
        await instance.stop()
        let result = try await OneShotRun(store: store, config: config())
            .run(image: TestPaths.sampleImage("hello-runtime"), invocation: .event(try Event(Array("{}".utf8), kind: .event)))
        #expect(result.response.bodyText.contains(#""count":1"#))
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func aRuntimeThatNeverAnswersIsKilledAtTheTimeoutWith433() async throws {
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config())
        let pids = instance.process.cgroup.processes()
        await #expect {
            _ = try await instance.invokeEvent(Array(#"{"hang":true}"#.utf8), requestID: "h", timeout: .milliseconds(300))
        } throws: { error in
            guard let e = error as? BootstrapError, case .timedOut = e else { return false }
            return e.code == .timeLimitReached
        }
        for pid in pids { #expect(kill(pid, 0) != 0) }
    }

    @Test func aRuntimeThatNeverReportsReadyFailsItsInitWith405() async throws {
        var config = config()
        config.command = ["/bin/sleep", "30"]
        config.initTimeout = .milliseconds(300)
        await #expect {
            _ = try await FunctionInstance.coldStart(
                image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config)
        } throws: { error in
            guard let e = error as? BootstrapError, case .initTimeout = e else { return false }
            return e.code == .containerStateExited
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    /// The test is the runtime client here, speaking raw HTTP/1.1 as the contract states it: everything out of
    /// order is refused with a 4xx and logged, and the instance keeps working.
    @Test func theProtocolAsTheContractStatesIt() async throws {
        var config = config()
        // Reports ready with busybox wget, then leaves the loop to the test.
        config.command = [
            "/bin/sh", "-c",
            "wget -q -O /dev/null --post-data ' ' http://$SCF_RUNTIME_API:$SCF_RUNTIME_API_PORT/runtime/init/ready && exec sleep 60",
        ]
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config)
        #expect(instance.protocolKind == .runtimeAPI)
        let client = RuntimeClient(process: instance.process)

        #expect(try await client.call("POST /runtime/init/ready", body: " ").status == 400, "a second init/ready")
        #expect(try await client.call("POST /runtime/invocation/response", body: "{}").status == 400, "nothing pending")
        #expect(try await client.call("GET /runtime/nonsense").status == 404)
        #expect(try await client.call("DELETE /runtime/invocation/next").status == 404)
        #expect(try await client.raw("NOT HTTP AT ALL\r\n\r\n").hasPrefix("HTTP/1.1 400"), "a malformed request")

        for round in 1...2 {
            let event = #"{"round":\#(round)}"#
            let invocation = Task {
                try await instance.invokeEvent(Array(event.utf8), requestID: "r\(round)", timeout: .seconds(7))
            }
            let next = try await client.call("GET /runtime/invocation/next")
            #expect(next.status == 200)
            #expect(next.headers["request_id"] == "r\(round)")
            #expect(next.headers["memory_limit_in_mb"] == "128")
            #expect(next.headers["time_limit_in_ms"] == "7000")
            #expect(next.body == event)
            #expect(try await client.call("GET /runtime/invocation/next").status == 400, "the invocation is unanswered")
            #expect(try await client.call("POST /runtime/invocation/response", body: "{\"ok\":\(round)}").status == 200)
            #expect(try await client.call("POST /runtime/invocation/response", body: "{}").status == 400, "posted twice")
            #expect(try await invocation.value.bodyText == "{\"ok\":\(round)}")
        }
        let log = instance.output.text
        for refusal in [
            "init/ready was already reported", "no invocation pending", "no such runtime API call: GET /runtime/nonsense",
        ] {
            #expect(log.contains(refusal), "logged: \(refusal) in \(log)")
        }
        await instance.stop()
    }

    /// With host networking the runtime API listens on a host port any local process could reach: only the
    /// instance's own processes are answered, so no one else can take its events or answer for it.
    @Test func withHostNetworkingOnlyTheInstanceReachesItsRuntimeAPI() async throws {
        var config = config()
        config.hostNetwork = true
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config)
        #expect(instance.protocolKind == .runtimeAPI, "the instance itself got through: \(instance.output.text)")
        let announced = try #require(instance.output.text.firstMatch(of: /runtime API 127\.0\.0\.1:(\d+)/))
        let port = try #require(UInt16(announced.1))

        // A host process asks for the next invocation: its connection is closed unanswered.
        let intruder = OwnedFileDescriptor(rawValue: Glibc.socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0))
        try LoopbackSocket.connect(intruder, port: port)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(intruder.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET /runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(intruder.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let response: HTTPResponse
        do {
            response = try await instance.invokeEvent(Array(#"{"n":1}"#.utf8), requestID: "own", timeout: .seconds(30))
        } catch {
            Issue.record("\(error); the function's output: \(instance.output.text)")
            await instance.stop()
            return
        }
        #expect(response.bodyText.contains(#""requestId":"own""#), "the function, not the intruder, got it: \(response.bodyText)")
        let (got, error, buffer) = await runBlocking { () -> (Int, Int32, [UInt8]) in  // off the cooperative pool
            var buffer = [UInt8](repeating: 0, count: 512)
            let got = buffer.withUnsafeMutableBytes { recv(intruder.rawValue, $0.baseAddress, $0.count, 0) }
            return (got, errno, buffer)
        }
        #expect(
            got == 0 || (got < 0 && error == ECONNRESET),
            "closed (errno \(error)) without an answer (got \(got) bytes: \(String(decoding: buffer.prefix(max(got, 0)), as: UTF8.self)))"
        )
        #expect(instance.output.text.contains("refused a connection from 127.0.0.1:"), "\(instance.output.text)")
        await instance.stop()
    }

    private func config() -> FunctionConfig {
        var config = FunctionConfig(name: "hello-runtime")
        config.kind = .event
        config.stopGrace = .zero
        return config
    }
}

/// A minimal HTTP/1.1 client for the runtime API, connecting from faasbox's side into the instance's network
/// namespace (where 127.0.0.1:9001 is the API). One connection per call, `Connection: close`.
struct RuntimeClient: Sendable {
    let process: SandboxProcess

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    func call(_ line: String, body: String = "") async throws -> Reply {
        let request =
            "\(line) HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let text = try await raw(request)
        let (head, _, rest) = text.partition("\r\n\r\n")
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let (name, _, value) = line.partition(": ")
            headers[name.lowercased()] = value
        }
        return Reply(status: status, headers: headers, body: rest)
    }

    /// Sends bytes as they are and reads the answer until the server closes.
    func raw(_ request: String) async throws -> String {
        let socket = try process.connect(port: 9001)
        let bytes = Array(request.utf8)
        return try await runBlocking { () throws(SystemCallError) -> String in
            let written = bytes.withUnsafeBytes { write(socket.rawValue, $0.baseAddress, $0.count) }
            if written != bytes.count { throw .current("write", path: "runtime API") }
            return String(decoding: try socket.readToEnd(), as: UTF8.self)
        }
    }
}

extension String {
    fileprivate func partition(_ separator: String) -> (String, String, String) {
        guard let range = range(of: separator) else { return (self, "", "") }
        return (String(self[..<range.lowerBound]), separator, String(self[range.upperBound...]))
    }
}
