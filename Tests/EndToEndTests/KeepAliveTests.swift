import Bootstrap
import Foundation
import ImageRuntime
import SystemSupport
import TestSupport
import Testing

/// hello-keepalive (a C server that keeps connections alive): the instance keeps its connection to :9000
/// between invocations, and a connection the function closes is replaced without the caller noticing.
@Suite struct KeepAliveTests {
    let state = TestPaths.temporaryDirectory("keepalive")

    private func start() async throws -> FunctionInstance {
        var config = FunctionConfig(name: "keepalive")
        config.stopGrace = .zero
        return try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-keepalive"), store: try ImageStore(root: state), config: config)
    }

    /// The function's own count of requests on the connection it answered on.
    private func connectionCount(_ response: HTTPResponse) -> Int? {
        response.bodyText.split(separator: "\n").first { $0.hasPrefix("connection: ") }
            .flatMap { Int($0.dropFirst("connection: ".count)) }
    }

    @Test func warmInvocationsReuseOneConnection() async throws {
        let instance = try await start()
        defer { Task { await instance.stop() } }
        var counts: [Int?] = []
        for i in 1...5 {
            let response = try await instance.invoke(
                HTTPRequest(method: i % 2 == 0 ? "POST" : "GET", target: "/n\(i)", body: Array("body \(i)".utf8)),
                requestID: "r\(i)", timeout: .seconds(5))
            #expect(response.status == 200)
            #expect(response.bodyText.contains("path: /n\(i)\n"))
            counts.append(connectionCount(response))
        }
        #expect(counts == [1, 2, 3, 4, 5], "each invocation after the first reuses the kept connection")
        await instance.stop()
    }

    @Test func aConnectionTheFunctionClosesIsReplacedWithoutAFailedCall() async throws {
        let instance = try await start()
        defer { Task { await instance.stop() } }
        // /drop answers, then closes the connection without saying so: the next call finds the kept connection
        // closing (or already closed) and must still be answered, on a new connection.
        for i in 0..<20 {
            let dropped = try await instance.invoke(
                HTTPRequest(method: "GET", target: "/drop"), requestID: "d\(i)", timeout: .seconds(5))
            #expect(dropped.status == 200)
            let next = try await instance.invoke(
                HTTPRequest(method: "GET", target: "/after"), requestID: "a\(i)", timeout: .seconds(5))
            #expect(next.status == 200)
            #expect(next.bodyText.contains("path: /after\n"))
            #expect(connectionCount(next) == 1, "a new connection after the function closed the old one")
        }
        await instance.stop()
    }
}
