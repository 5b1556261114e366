import AsyncHTTPClient
import Foundation
import NIOCore
import Sandbox
import Synchronization
import TestSupport
import Testing

@testable import Executor
@testable import Service

/// What the clients saw, shared between them.
final class Tally: Sendable {
    let statuses = Shared<[Int: Int]>([:])
    let failures = Shared<[String]>([])
    let peakInstances = Shared(0)
}

final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}

/// 50 clients at once for 30 s against a web function through `faasbox serve`.
@Suite(.serialized) struct ServerLoadTests {
    @Test func fiftyClientsForThirtySecondsGetAnswersOr432AndLeakNothing() async throws {
        let server = try await TestServer.start()
        let limit = 40
        // Public: the load goes over TCP without signatures, as a browser's would.
        _ = try await server.deploy("loaded", image: "hello-web", ["concurrency": limit, "timeout": 30, "public": true])
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let tally = Tally()
        let (statuses, failures, peakInstances) = (tally.statuses, tally.failures, tally.peakInstances)
        let end = ContinuousClock.now + .seconds(30)
        await withTaskGroup(of: Void.self) { group in
            for client_ in 0..<50 {
                group.addTask {
                    var i = 0
                    while ContinuousClock.now < end {
                        i += 1
                        let request = HTTPClientRequest(url: "\(server.url)/web/loaded/hello?client=\(client_)&i=\(i)")
                        do {
                            let response = try await client.execute(request, timeout: .seconds(60))
                            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                            let status = Int(response.status.code)
                            statuses.withLock { $0[status, default: 0] += 1 }
                            if status == 200 && !body.contains("query: client=\(client_)&i=\(i)") {
                                failures.withLock { $0.append("wrong answer: \(body)") }
                            }
                        } catch {
                            failures.withLock { $0.append("\(error)") }
                        }
                    }
                }
            }
            group.addTask {
                while ContinuousClock.now < end {
                    let count = (try? await server.instances("loaded").count) ?? 0
                    peakInstances.withLock { $0 = max($0, count) }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        }
        try await client.shutdown()
        let seen = statuses.withLock { $0 }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
        #expect(Set(seen.keys).isSubset(of: [200, 432]), "only answers and intended 432s: \(seen)")
        #expect(seen[200, default: 0] > 1000, "it kept answering: \(seen)")
        #expect(peakInstances.withLock { $0 } <= limit)
        #expect(try await server.call(.GET, "/healthz").status == 200, "still serving")

        let ids = try await server.instances("loaded").compactMap { $0["id"] as? String }
        await server.stop()
        let directories = try FileManager.default.contentsOfDirectory(atPath: "\(server.stateDir)/instances")
        #expect(directories.isEmpty, "no instance left after shutdown: \(directories)")
        for id in ids { #expect(CgroupHost.current.leftoverInstance(id) == nil) }
        #expect(TestPaths.mounts(containing: server.stateDir).isEmpty)
        print("load: \(seen) over 30 s, at most \(peakInstances.withLock { $0 }) instances")
    }
}
