import Testing

@testable import Bootstrap

/// An event is checked once, where it enters, against its function kind's rules (contract §4, §6).
@Suite struct EventTests {
    private func code(_ bytes: [UInt8], _ kind: FunctionConfig.Kind, _ delivery: Event.Delivery = .sync)
        -> SCFContract.ErrorCode?
    {
        do {
            _ = try Event(bytes, kind: kind, delivery: delivery)
            return nil
        } catch { return error.code }
    }

    /// A JSON array of `count` bytes.
    private func json(_ count: Int) -> [UInt8] { Array(("[\"" + String(repeating: "x", count: count - 4) + "\"]").utf8) }

    @Test func eachKindAndDeliveryHasItsLimit() {
        #expect(code(json(6 << 20), .event) == nil, "6 MB sync is allowed")
        #expect(code(json((6 << 20) + 1), .event) == .requestTooLarge)
        #expect(code(json(128 << 10), .event, .async) == nil, "128 KB async is allowed")
        #expect(code(json((128 << 10) + 1), .event, .async) == .requestTooLarge)
        // A job's event is one variable, sync or async: 128 KB as execve counts it, with its name, = and NUL.
        let job = (128 << 10) - "SCF_CUSTOM_CONTAINER_EVENT=".utf8.count - 1
        #expect(code(json(job), .job) == nil)
        #expect(code(json(job + 1), .job) == .requestTooLarge)
        #expect(code(json(job), .job, .async) == nil)
        #expect(Event.limit(kind: .job, delivery: .async) == job)
    }

    @Test func anEventFunctionTakesJSONAndAJobJSONOrNothing() {
        #expect(code(Array("not json".utf8), .event) == .invalidParameter)
        #expect(code([], .event) == .invalidParameter, "an event function's event is JSON, never empty")
        #expect(code([], .job) == nil, "a job may run without an event")
        #expect(code(Array("{\"a\":\u{0}}".utf8), .job) == .invalidParameter, "no NUL in an environment variable")
        #expect(code(Array("17".utf8), .event) == nil, "a JSON fragment is JSON")
        #expect(code(Array("{}".utf8), .web) == .invalidParameter, "a web function takes requests, not events")
    }

    @Test func anUnexpectedFailureIsFaasboxsNotTheFunctions() {
        #expect(BootstrapError.internalError("bind: address in use").code == .internalError)
        #expect(BootstrapError.invocationFailed("the function exited with status 1").code == .userProcessExited)
        #expect(BootstrapError.timedOut(.seconds(3)).code == .timeLimitReached)
        #expect(BootstrapError.memoryLimitExceeded(memoryMB: 64).code == .memoryLimitReached)
    }
}
