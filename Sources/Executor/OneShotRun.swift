import Bootstrap
import Foundation
import ImageRuntime
import Logging

/// `faasbox run`: one cold start, one invocation, the logs and the Init Report, then teardown.
public struct OneShotRun: Sendable {
    public struct Result: Sendable {
        public let requestID: String
        /// The function's answer: the HTTP response (web), the return value as the body (event), an empty 200
        /// (a job that exited 0; its output is in the log).
        public let response: HTTPResponse
        /// How the instance took the invocation (event functions: event-invoke or runtime-api).
        public let protocolKind: FunctionInstance.ProtocolKind
        public let timings: PhaseTimings
        public let logLines: [String]
        public let initReport: String
    }

    public let store: ImageStore
    public let config: FunctionConfig

    public init(store: ImageStore, config: FunctionConfig) {
        self.store = store
        self.config = config
    }

    /// Runs `request` against a fresh instance of `image`. Cancelling the task tears the instance down; it
    /// is always stopped before this returns or throws.
    public func run(image: String, request: HTTPRequest) async throws(BootstrapError) -> Result {
        try await run(image: image, invocation: .http(request))
    }

    /// `failureLog`, when given, receives the invocation's log (START, output, END, REPORT) if the invocation
    /// fails after the instance started, before the error is thrown.
    public func run(
        image: String, invocation: Invocation, streamingTo sink: ResponseSink? = nil,
        failureLog: (@Sendable ([String]) -> Void)? = nil
    ) async throws(BootstrapError) -> Result {
        var jobEvent: Event?
        if case .event(let event) = invocation, config.kind == .job { jobEvent = event }
        let requestID = RequestID.make()
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config, jobEvent: jobEvent)
        let clock = ContinuousClock()
        let begin = clock.now
        let response: HTTPResponse
        do {
            response = try await instance.deliver(invocation, requestID: requestID, timeout: config.timeout, sink: sink)
        } catch {
            let duration = clock.now - begin
            let peak = instance.maxMemoryUsed
            await instance.stop()
            if let failureLog {
                await instance.output.waitForEOF()
                failureLog(
                    Self.logLines(requestID, instance: instance, duration: duration, peak: peak, memoryMB: config.memoryMB))
            }
            throw error
        }
        let duration = clock.now - begin
        let peak = instance.maxMemoryUsed
        await instance.stop()
        await instance.output.waitForEOF()
        return Result(
            requestID: requestID, response: response, protocolKind: instance.protocolKind, timings: instance.timings,
            logLines: Self.logLines(requestID, instance: instance, duration: duration, peak: peak, memoryMB: config.memoryMB),
            initReport: LogFormat.initReport(requestID, instance.timings))
    }

    static func logLines(_ requestID: String, instance: FunctionInstance, duration: Duration, peak: Int64?, memoryMB: Int)
        -> [String]
    {
        LogFormat.invocation(
            requestID, output: instance.output.lines(for: requestID, includingInit: true).map(\.text), duration: duration,
            memorySizeMB: memoryMB, maxMemoryUsedBytes: peak)
    }
}
