import Bootstrap
import Foundation
import ImageRuntime
import NIOCore
import NIOPosix
import SystemSupport
import TestSupport
import Testing

/// hello-keepalive (a C server that keeps connections alive): the instance keeps its connection to :9000
/// between invocations, and a connection the function closes is replaced without the caller noticing.
@Suite struct KeepAliveTests {
    let state = TestPaths.temporaryDirectory("keepalive")

    private func start(group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> FunctionInstance {
        var config = FunctionConfig(name: "keepalive")
        config.stopGrace = .zero
        return try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-keepalive"), store: try ImageStore(root: state), config: config,
            group: group)
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

    /// Calls made from an event loop (as serve makes them) use the kept connection whichever loop it is on, but
    /// a run of calls from another loop moves it there: a new connection, made on the callers' loop.
    @Test func theKeptConnectionMovesToTheLoopOfARunOfCallers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let instance = try await start(group: group)
        let (a, b) = (group.next(), group.next())
        #expect(a !== b)
        func count(on loop: EventLoop, _ i: Int) async throws -> Int? {
            let response: HTTPResponse = try await withCheckedThrowingContinuation { done in
                loop.execute {
                    Task.immediate {
                        do {
                            done.resume(
                                returning: try await instance.invoke(
                                    HTTPRequest(method: "GET", target: "/c\(i)"), requestID: "c\(i)", timeout: .seconds(5)))
                        } catch { done.resume(throwing: error) }
                    }
                }
            }
            #expect(response.status == 200)
            return connectionCount(response)
        }
        var counts = [try await count(on: a, 0)]
        for i in 1...UpstreamConnections.callsBeforeMove { counts.append(try await count(on: b, i)) }
        counts.append(try await count(on: b, 100))
        counts.append(try await count(on: a, 101))
        counts.append(try await count(on: b, 102))
        let away = UpstreamConnections.callsBeforeMove
        #expect(counts == Array(1...away) + [1, 2, 3, 4], "moved on the \(away)th call from the other loop, then stays")
        await instance.stop()
        try await group.shutdownGracefully()
    }
}
