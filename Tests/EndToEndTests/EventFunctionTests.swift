import Bootstrap
import Executor
import Foundation
import ImageRuntime
import TestSupport
import Testing

/// hello-event: an image event function answering POST /event-invoke.
@Suite struct EventFunctionTests {
    let state = TestPaths.temporaryDirectory("event")

    @Test func theEventAndTheContextHeadersReachTheFunction() async throws {
        let run = OneShotRun(store: try ImageStore(root: state), config: FunctionConfig(name: "hello-event"))
        let event = #"{"Type":"Timer","TriggerName":"every-minute","Message":"tick"}"#
        let result = try await run.run(
            image: TestPaths.sampleImage("hello-event"), invocation: .event(try Event(Array(event.utf8), kind: .event)))
        #expect(result.response.status == 200)
        let body = try #require(
            try JSONSerialization.jsonObject(with: Data(result.response.body)) as? [String: Any])
        #expect(body["requestId"] as? String == result.requestID)
        #expect(body["functionName"] as? String == "hello-event")
        let echoed = try #require(body["event"] as? [String: String])
        #expect(echoed == ["Type": "Timer", "TriggerName": "every-minute", "Message": "tick"])
        #expect(result.logLines.contains("event \(result.requestID): \(event)"), "the function's stderr is in the log")
    }

    @Test func aNonJSONEventIsRefusedBeforeAnyInstanceStarts() async throws {
        let run = OneShotRun(store: try ImageStore(root: state), config: FunctionConfig(name: "hello-event"))
        await #expect {
            _ = try await run.run(
                image: TestPaths.sampleImage("hello-event"), invocation: .event(try Event(Array("not json".utf8), kind: .event)))
        } throws: { error in
            guard let e = error as? BootstrapError else { return false }
            return e.code == .invalidParameter
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/layers/sha256").isEmpty, "not even pulled")
    }

    @Test func anEventOverSixMegabytesIsRefusedWith406() async throws {
        let big = "[\"" + String(repeating: "x", count: 6 << 20) + "\"]"
        #expect {
            _ = try Event(Array(big.utf8), kind: .event)
        } throws: { error in
            (error as? BootstrapError)?.code == .requestTooLarge
        }
    }
}
