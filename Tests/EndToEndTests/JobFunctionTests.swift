import Bootstrap
import Executor
import Foundation
import ImageRuntime
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Job functions: Entrypoint/Cmd runs to exit with the event in SCF_CUSTOM_CONTAINER_EVENT (contract §1, §4).
@Suite struct JobFunctionTests {
    let state = TestPaths.temporaryDirectory("job")

    @Test func aJobRunsToExitWithItsEventAndIsReleased() async throws {
        let store = try ImageStore(root: state)
        let result = try await OneShotRun(store: store, config: config())
            .run(image: TestPaths.sampleImage("hello-job"), invocation: .event(try Event(Array(#"{"x":1}"#.utf8), kind: .job)))
        #expect(result.protocolKind == .job)
        #expect(result.response.status == 200)
        #expect(result.logLines.contains(#"hello-job: started with event {"x":1}"#), "\(result.logLines)")
        #expect(result.logLines.contains("hello-job: done"))
        #expect(result.logLines.last?.hasPrefix("REPORT RequestId: \(result.requestID) Duration: ") == true)
        #expect(result.timings.initRuntime > .zero)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty, "released")
    }

    @Test func aNonZeroExitIs430WithTheJobsOutput() async throws {
        let run = OneShotRun(store: try ImageStore(root: state), config: config())
        await #expect {
            _ = try await run.run(
                image: TestPaths.sampleImage("hello-job"), invocation: .event(try Event(Array(#"{"exit": 7}"#.utf8), kind: .job)))
        } throws: { error in
            guard let e = error as? BootstrapError, case .jobFailed(.exited(7), let output) = e else { return false }
            return e.code == .userCodeError && output.contains("failing with exit code 7")
        }
    }

    @Test func aJobPastItsTimeoutIsKilledWith433() async throws {
        var config = config()
        config.timeout = .milliseconds(300)
        let begin = ContinuousClock.now
        let run = OneShotRun(store: try ImageStore(root: state), config: config)
        await #expect {
            _ = try await run.run(
                image: TestPaths.sampleImage("hello-job"),
                invocation: .event(try Event(Array(#"{"sleep": 30}"#.utf8), kind: .job)))
        } throws: { error in
            (error as? BootstrapError)?.code == .timeLimitReached
        }
        #expect(ContinuousClock.now - begin < .seconds(20), "killed at its timeout, not after its 30 s")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func anEventOver128KBOrNotJSONIsRefusedBeforeAnythingStarts() async throws {
        let run = OneShotRun(store: try ImageStore(root: state), config: config())
        let big = "[\"" + String(repeating: "x", count: 128 << 10) + "\"]"
        for (event, code) in [(big, SCFContract.ErrorCode.requestTooLarge), ("not json", .invalidParameter)] {
            await #expect {
                _ = try await run.run(
                    image: TestPaths.sampleImage("hello-job"), invocation: .event(try Event(Array(event.utf8), kind: .job)))
            } throws: { error in
                (error as? BootstrapError)?.code == code
            }
        }
        let layers = (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/layers/sha256")) ?? []
        #expect(layers.isEmpty, "not even pulled")
    }

    private func config() -> FunctionConfig {
        var config = FunctionConfig(name: "hello-job")
        config.kind = .job
        return config
    }
}
