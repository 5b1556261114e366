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

    /// Runs `request` against a fresh instance of `image`. `started` sees the instance once it is ready (so a
    /// signal handler can stop it). The instance is always stopped before this returns or throws.
    public func run(image: String, request: HTTPRequest, started: @Sendable (FunctionInstance) -> Void = { _ in })
        async throws(BootstrapError) -> Result
    {
        let requestID = UUID().uuidString.lowercased()
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        started(instance)
        let clock = ContinuousClock()
        let begin = clock.now
        let response: HTTPResponse
        do {
            response = try await instance.invoke(request, requestID: requestID)
        } catch {
            await instance.stop(grace: stopGrace)
            throw error
        }
        let duration = clock.now - begin
        let peak = instance.maxMemoryUsed
        await instance.stop(grace: stopGrace)
        await instance.output.waitForEOF()
        var lines = [LogFormat.start(requestID)]
        lines += instance.output.snapshot.map(\.text)
        lines.append(LogFormat.end(requestID))
        lines.append(LogFormat.report(requestID, duration: duration, memorySizeMB: config.memoryMB, maxMemoryUsedBytes: peak))
        let initReport = LogFormat.initReport(requestID, instance.timings)
        return Result(requestID: requestID, response: response, timings: instance.timings, logLines: lines, initReport: initReport)
    }
}
