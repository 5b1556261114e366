import Bootstrap
import Foundation
import ImageRuntime
import Logging
import Synchronization

/// `faasbox run`: one cold start, one invocation, the logs and the Init Report, then teardown.
public struct OneShotRun: Sendable {
    public struct Result: Sendable {
        public let requestID: String
        public let response: HTTPResponse
        public let timings: PhaseTimings
        public let logLines: [String]
        public let initReport: String
    }

    public let store: ImageStore
    public let config: FunctionConfig
    public let stopGrace: Duration

    public init(store: ImageStore, config: FunctionConfig, stopGrace: Duration = .zero) {
        self.store = store
        self.config = config
        self.stopGrace = stopGrace
    }

    /// Runs `request` against a fresh instance of `image`. Cancelling the task tears the instance down; it
    /// is always stopped before this returns or throws.
    public func run(image: String, request: HTTPRequest) async throws(BootstrapError) -> Result {
        try await run(image: image, invocation: .http(request))
    }

    /// What one invocation sends: an HTTP request (web functions) or an event (image event functions).
    public enum Invocation: Sendable {
        case http(HTTPRequest)
        case event([UInt8])
    }

    public func run(image: String, invocation: Invocation)
        async throws(BootstrapError) -> Result
    {
        if case .event(let event) = invocation { try FunctionInstance.validateEvent(event) }
        let requestID = UUID().uuidString.lowercased()
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        let clock = ContinuousClock()
        let begin = clock.now
        let response: HTTPResponse
        do {
            switch invocation {
            case .http(let request):
                response = try await instance.invoke(request, requestID: requestID, timeout: config.timeout)
            case .event(let event):
                response = try await instance.invokeEvent(event, requestID: requestID, timeout: config.timeout)
            }
        } catch {
            await instance.stop(grace: stopGrace)
            throw error
        }
        let duration = clock.now - begin
        let peak = instance.maxMemoryUsed
        await instance.stop(grace: stopGrace)
        await instance.output.waitForEOF()
        return Result(
            requestID: requestID, response: response, timings: instance.timings,
            logLines: Self.logLines(requestID, instance: instance, duration: duration, peak: peak, memoryMB: config.memoryMB),
            initReport: LogFormat.initReport(requestID, instance.timings))
    }

    static func logLines(_ requestID: String, instance: FunctionInstance, duration: Duration, peak: Int64?, memoryMB: Int)
        -> [String]
    {
        var lines = [LogFormat.start(requestID)]
        lines += instance.output.snapshot.map(\.text)
        lines.append(LogFormat.end(requestID))
        lines.append(LogFormat.report(requestID, duration: duration, memorySizeMB: memoryMB, maxMemoryUsedBytes: peak))
        return lines
    }
}
