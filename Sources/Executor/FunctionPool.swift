import Bootstrap
import Foundation
import ImageRuntime

/// The instances of one function: a warm idle instance is reused for the next invocation (same process, same
/// /tmp), each instance takes one invocation at a time, at most `concurrency` invocations run at once (the
/// next one is refused with the contract's 432 at once), and instances idle longer than `idleTimeout` are
/// stopped by `reclaimIdle`. An instance whose invocation failed in a way that ends it is never reused.
public actor FunctionPool {
    public let image: String
    public let config: FunctionConfig
    public let concurrency: Int
    public let idleTimeout: Duration
    private let store: ImageStore

    private struct Idle {
        let instance: FunctionInstance
        let since: ContinuousClock.Instant
    }
    private var idle: [Idle] = []
    /// Instances started in advance: kept warm, never reclaimed for idleness.
    private var provisioned = Set<String>()
    private var inFlight = 0
    private var draining = false

    public init(image: String, store: ImageStore, config: FunctionConfig, concurrency: Int, idleTimeout: Duration) {
        self.image = image
        self.store = store
        self.config = config
        self.concurrency = max(1, concurrency)
        self.idleTimeout = idleTimeout
    }

    /// One invocation's outcome, with what the executor logs and reports about it.
    public struct Outcome: Sendable {
        public let requestID: String
        public let response: HTTPResponse
        /// The cold start's phases when this invocation started the instance; nil when it reused a warm one.
        public let coldStart: PhaseTimings?
        public let duration: Duration
        public let maxMemoryUsedBytes: Int64?
        /// The instance's output lines of this invocation (and, on a cold start, its init output before them).
        public let logLines: [String]
    }

    /// Invokes the function once: on an idle instance if there is one, else on a new one.
    public func invoke(_ invocation: OneShotRun.Invocation, requestID: String) async throws(BootstrapError) -> Outcome {
        if draining { throw .cancelled }
        guard inFlight < concurrency else { throw .concurrencyLimitExceeded(limit: concurrency) }
        inFlight += 1
        defer { inFlight -= 1 }
        if config.kind == .job { return try await runJob(invocation, requestID: requestID) }
        let (instance, cold) = try await takeInstance()
        let clock = ContinuousClock()
        let begin = clock.now
        do {
            let response = try await invocation.deliver(to: instance, requestID: requestID, timeout: config.timeout)
            let duration = clock.now - begin
            let outcome = Outcome(
                requestID: requestID, response: response, coldStart: cold ? instance.timings : nil, duration: duration,
                maxMemoryUsedBytes: instance.maxMemoryUsed,
                logLines: instance.output.lines(for: requestID, includingInit: cold).map(\.text))
            await giveBack(instance)
            return outcome
        } catch {
            // A function error (430) leaves the instance as it was; anything else may have ended it.
            if case .functionError = error { await giveBack(instance) } else { await instance.stop() }
            throw error
        }
    }

    /// A job is its own instance: started with the event, run to exit, released.
    private func runJob(_ invocation: OneShotRun.Invocation, requestID: String) async throws(BootstrapError) -> Outcome {
        guard case .event(let event) = invocation else { throw .invalidRequest("a job function takes an event") }
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config, jobEvent: event)
        let begin = ContinuousClock.now
        let response: HTTPResponse
        do {
            response = try await invocation.deliver(to: instance, requestID: requestID, timeout: config.timeout)
        } catch {
            await instance.stop()
            throw error
        }
        let duration = ContinuousClock.now - begin
        let peak = instance.maxMemoryUsed
        await instance.stop()
        return Outcome(
            requestID: requestID, response: response,
            coldStart: instance.timings, duration: duration, maxMemoryUsedBytes: peak,
            logLines: instance.output.snapshot.map(\.text))
    }

    /// Starts `count` instances in advance (provisioned concurrency) and keeps them warm; returns their
    /// `Provisioned Report` lines. Stops at the first that fails to start, throwing its error.
    public func provision(_ count: Int) async throws(BootstrapError) -> [String] {
        var reports: [String] = []
        for _ in 0..<count {
            let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
            provisioned.insert(instance.id)
            idle.append(Idle(instance: instance, since: .now))
            reports.append(LogFormat.provisionedReport(instance.id, instance.timings))
        }
        return reports
    }

    /// Stops the instances idle for longer than `idleTimeout` (not the provisioned ones); returns how many.
    @discardableResult
    public func reclaimIdle(now: ContinuousClock.Instant = .now) async -> Int {
        let isExpired = { (entry: Idle) in now - entry.since >= self.idleTimeout && !self.provisioned.contains(entry.instance.id)
        }
        let expired = idle.filter(isExpired)
        idle.removeAll(where: isExpired)
        for entry in expired { await entry.instance.stop() }
        return expired.count
    }

    /// Stops every idle instance and refuses new invocations (those in flight finish).
    public func drain() async {
        draining = true
        let all = idle
        idle = []
        provisioned = []
        for entry in all { await entry.instance.stop() }
    }

    public var idleCount: Int { idle.count }
    public var busyCount: Int { inFlight }

    private func takeInstance() async throws(BootstrapError) -> (FunctionInstance, cold: Bool) {
        while let entry = idle.popLast() {
            if entry.instance.process.exitStatus == nil { return (entry.instance, false) }
            await entry.instance.stop()  // died while idle
        }
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        return (instance, true)
    }

    private func giveBack(_ instance: FunctionInstance) async {
        if draining || instance.process.exitStatus != nil {
            await instance.stop()
        } else {
            idle.append(Idle(instance: instance, since: .now))
        }
    }
}
