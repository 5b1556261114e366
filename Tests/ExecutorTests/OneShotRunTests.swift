import Bootstrap
import Executor
import Foundation
import ImageRuntime
import Synchronization
import TestSupport
import Testing

@Suite struct OneShotRunTests {
    @Test func logsAreFramedByStartEndAndReportWithTheFunctionsOutputBetween() async throws {
        let store = try ImageStore(root: TestPaths.temporaryDirectory("exec"))
        let run = OneShotRun(store: store, config: FunctionConfig(name: "hello-web"))
        let result = try await run.run(
            image: TestPaths.sampleImage("hello-web"), request: HTTPRequest(method: "GET", target: "/hello"))
        let id = result.requestID
        #expect(result.logLines.first == "START RequestId: \(id)")
        #expect(result.logLines.contains("hello-web: starting on 0.0.0.0:9000 as uid 10001"))
        #expect(result.logLines.dropLast().last == "END RequestId: \(id)")
        let report = try #require(result.logLines.last)
        #expect(report.hasPrefix("REPORT RequestId: \(id) Duration: "))
        #expect(report.contains("Memory Size: 128 MB Max Memory Used: "))
        #expect(!report.contains("Max Memory Used: - MB"))
        #expect(result.initReport.hasPrefix("Init Report RequestId: \(id) Coldstart: "))
    }
}

@Suite struct OneShotRunFailureLogTests {
    @Test func aFailedInvocationStillHandsOverItsLog() async throws {
        var config = FunctionConfig(name: "hello-runtime")
        config.kind = .event
        let collected = Mutex<[String]>([])
        let run = OneShotRun(store: try ImageStore(root: TestPaths.temporaryDirectory("failure-log")), config: config)
        await #expect(throws: BootstrapError.self) {
            _ = try await run.run(
                image: TestPaths.sampleImage("hello-runtime"),
                invocation: .event(try Event(Array(#"{"fail":true}"#.utf8), kind: .event)),
                failureLog: { lines in collected.withLock { $0 = lines } })
        }
        let lines = collected.withLock { $0 }
        #expect(lines.first?.hasPrefix("START RequestId: ") == true)
        #expect(lines.contains { $0.hasPrefix("hello-runtime: invocation 1") })
        #expect(lines.last?.hasPrefix("REPORT RequestId: ") == true)
    }
}
