import Bootstrap
import Foundation
import ImageRuntime
import Logging
import Synchronization

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

    /// What one invocation sends: an HTTP request (web functions) or an event (event and job functions).
    public enum Invocation: Sendable {
        case http(HTTPRequest)
        case event([UInt8])
    }

    /// Where a web function's response goes as it arrives, instead of being collected into the result.
    public struct Sink: Sendable {
        /// Called on the instance connection's event loop: must not block.
        public let head: @Sendable (HTTPResponse) throws -> Void
        public let body: @Sendable ([UInt8]) throws -> Void
        /// The response is complete: called on the connection's event loop the moment its last byte arrives,
        /// before the function's output is attributed and the invocation's log and metrics are written.
        public let end: @Sendable () -> Void
        public init(
            head: @escaping @Sendable (HTTPResponse) throws -> Void,
            body: @escaping @Sendable ([UInt8]) throws -> Void,
            end: @escaping @Sendable () -> Void = {}
        ) {
            self.head = head
            self.body = body
            self.end = end
        }
    }

    /// `failureLog`, when given, receives the invocation's log (START, output, END, REPORT) if the invocation
    /// fails after the instance started, before the error is thrown.
    public func run(
        image: String, invocation: Invocation, streamingTo sink: Sink? = nil,
        failureLog: (@Sendable ([String]) -> Void)? = nil
    ) async throws(BootstrapError) -> Result {
        var jobEvent: [UInt8]?
        if case .event(let event) = invocation {
            if config.kind == .job {
                jobEvent = event
            } else {
                try FunctionInstance.validateEvent(event)
            }
        }
        let requestID = RequestID.make()
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config, jobEvent: jobEvent)
        let clock = ContinuousClock()
        let begin = clock.now
        let response: HTTPResponse
        do {
            response = try await invocation.deliver(to: instance, requestID: requestID, timeout: config.timeout, sink: sink)
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

extension OneShotRun.Invocation {
    /// Delivers the invocation to `instance` the way its protocol takes it. A job's invocation is its run to
    /// exit: an empty 200 when it exited 0 (its output is in the log).
    func deliver(to instance: FunctionInstance, requestID: String, timeout: Duration, sink: OneShotRun.Sink? = nil)
        async throws(BootstrapError) -> HTTPResponse
    {
        switch (self, instance.protocolKind) {
        case (_, .job):
            _ = try await instance.waitForJob(timeout: timeout)
            return HTTPResponse(status: 200, reason: "OK", headers: [], body: [])
        case (.http(let request), _):
            guard let sink else { return try await instance.invoke(request, requestID: requestID, timeout: timeout) }
            let head = Mutex(HTTPResponse(status: 0, reason: "", headers: [], body: []))
            try await instance.invokeStreaming(
                request, requestID: requestID, timeout: timeout,
                onHead: { h in
                    head.withLock { $0 = h }
                    try sink.head(h)
                }, onBody: sink.body, onEnd: sink.end)
            return head.withLock { $0 }
        case (.event(let event), _): return try await instance.invokeEvent(event, requestID: requestID, timeout: timeout)
        }
    }
}
