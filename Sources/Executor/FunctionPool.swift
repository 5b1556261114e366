import Bootstrap
import Foundation
import ImageRuntime
import Synchronization
import SystemSupport

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
    private var provisionedTarget = 0
    /// Instances running an invocation now, by id.
    private var busy: [String: FunctionInstance] = [:]
    private var inFlight = 0
    private var draining = false

    public init(image: String, store: ImageStore, config: FunctionConfig, concurrency: Int, idleTimeout: Duration) {
        self.image = image
        self.store = store
        self.config = config
        self.concurrency = max(1, concurrency)
        self.idleTimeout = idleTimeout
    }

    /// Invokes the function once and throws its error, if any (see `run`).
    public func invoke(_ invocation: Invocation, requestID: String) async throws(InvocationError) -> Outcome {
        let outcome = await run(invocation, requestID: requestID)
        _ = try outcome.response
        return outcome
    }

    /// Invokes the function once: on an idle instance if there is one, else on a new one. With `sink`, a web
    /// function's response goes there as it arrives (the outcome's response then has no body). Over the
    /// concurrency limit the outcome is a 432 at once — unless an invocation in flight has already answered its
    /// caller and is only finishing its bookkeeping: then this one waits for its slot (a client that sends its
    /// next request the moment it has the last answer is not over the limit).
    /// `reserved`: the caller holds a slot from `reserve` for this invocation (the async dispatcher does).
    public nonisolated func run(
        _ invocation: Invocation, requestID: String, sink: ResponseSink? = nil, reserved: Bool = false
    ) async -> Outcome {
        let answered = AtomicFlag()
        let sink = sink?.onEnd { if answered.setOnce() { self.answeredInFlight.add(1, ordering: .releasing) } }
        switch await deliver(invocation, requestID: requestID, sink: sink, reserved: reserved, answered: answered) {
        case .outcome(let outcome): return outcome
        case .delivered(let d):
            // After the instance and the slot are free: the next invocation need not wait for this bookkeeping.
            return Outcome(
                requestID: requestID, instanceID: d.instance.id, result: d.result,
                coldStart: d.cold ? d.instance.timings : nil, duration: d.duration,
                maxMemoryUsedBytes: d.peak ?? d.instance.maxMemoryUsed,
                logLines: d.instance.output.take(for: requestID, includingInit: d.cold).map(\.text))
        }
    }

    /// An invocation an instance took (its outcome is built once the instance is free), or a finished outcome
    /// (refused, or a job's).
    private enum Delivery {
        case outcome(Outcome)
        case delivered(
            instance: FunctionInstance, result: Result<HTTPResponse, InvocationError>, cold: Bool, duration: Duration,
            peak: Int64?)
    }

    /// Invocations whose caller already has the whole response (their instance and slot are about to be free).
    private nonisolated let answeredInFlight = Atomic<Int>(0)
    /// Invocations waiting for the slot of one that has answered; each is handed that slot (`freeSlot`).
    private var slotWaiters: [CheckedContinuation<Void, Never>] = []
    /// Invocations waiting for the instance of one that has answered (`takeInstance`).
    private var instanceWaiters: [CheckedContinuation<Void, Never>] = []

    private func wakeInstanceWaiters() {
        let waiters = instanceWaiters
        instanceWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    private func deliver(
        _ invocation: Invocation, requestID: String, sink: ResponseSink?, reserved: Bool,
        answered: AtomicFlag
    ) async -> Delivery {
        if !reserved {
            if draining { return .outcome(.refused(requestID, .instance(.cancelled))) }
            if inFlight < concurrency {
                inFlight += 1
            } else if answeredInFlight.load(ordering: .acquiring) > 0 {
                await withCheckedContinuation { slotWaiters.append($0) }
            } else {
                return .outcome(.refused(requestID, .concurrencyLimitExceeded(limit: concurrency)))
            }
        }
        defer {
            if answered.isSet {
                answeredInFlight.subtract(1, ordering: .releasing)
                wakeInstanceWaiters()
            }
            freeSlot()
        }
        if draining { return .outcome(.refused(requestID, .instance(.cancelled))) }
        let instance: FunctionInstance
        let cold: Bool
        do {
            (instance, cold) = try await takeInstance(for: invocation)
        } catch { return .outcome(.refused(requestID, .instance(error))) }
        busy[instance.id] = instance
        defer { busy[instance.id] = nil }
        let begin = ContinuousClock.now
        let result: Result<HTTPResponse, InvocationError>
        do {
            result = .success(try await instance.deliver(invocation, requestID: requestID, timeout: config.timeout, sink: sink))
        } catch {
            result = .failure(.instance(error))
        }
        let duration = ContinuousClock.now - begin
        if config.kind == .job {
            // A job is its own instance, run to exit: released with all it printed.
            let peak = instance.maxMemoryUsed
            await instance.stop()
            await instance.output.waitForEOF()
            return .outcome(
                Outcome(
                    requestID: requestID, instanceID: instance.id, result: result, coldStart: instance.timings,
                    duration: duration, maxMemoryUsedBytes: peak, logLines: instance.output.snapshot.map(\.text)))
        }
        // A function error (430) leaves the instance as it was; any other failure may have ended it (its peak
        // memory is read before its cgroup goes).
        switch result {
        case .success, .failure(.instance(.functionError)):
            await giveBack(instance)
            return .delivered(instance: instance, result: result, cold: cold, duration: duration, peak: nil)
        case .failure:
            let peak = instance.maxMemoryUsed
            await stopInstance(instance)
            return .delivered(instance: instance, result: result, cold: cold, duration: duration, peak: peak)
        }
    }

    /// Ends an invocation's hold on its slot: handed to the first waiter, if any, else freed.
    private func freeSlot() {
        if slotWaiters.isEmpty {
            inFlight -= 1
        } else {
            slotWaiters.removeFirst().resume()
        }
    }

    /// Takes up to `count` of the free slots for invocations to come (each then passed to `run` with
    /// `reserved: true`, or given back with `release`); returns how many it took.
    public func reserve(_ count: Int) -> Int {
        let granted = draining ? 0 : max(0, min(count, concurrency - inFlight))
        inFlight += granted
        return granted
    }

    public func release(_ count: Int) {
        for _ in 0..<count { freeSlot() }
    }

    /// Starts `count` instances in advance (provisioned concurrency) and keeps them warm, replacing any that
    /// dies (`maintain`); returns their `Provisioned Report` lines. Stops at the first that fails to start,
    /// throwing its error.
    public func provision(_ count: Int) async throws(BootstrapError) -> [ProvisionedReport] {
        provisionedTarget += count
        var reports: [ProvisionedReport] = []
        for _ in 0..<count { reports.append(try await startProvisioned()) }
        return reports
    }

    private func startProvisioned() async throws(BootstrapError) -> ProvisionedReport {
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        if draining {
            await instance.stop()
            throw .cancelled
        }
        provisioned.insert(instance.id)
        idle.append(Idle(instance: instance, since: .now))
        instance.suspend()
        return ProvisionedReport(instanceID: instance.id, timings: instance.timings)
    }

    /// Stops the instances idle for longer than `idleTimeout` (not the provisioned ones); returns how many.
    @discardableResult
    public func reclaimIdle(now: ContinuousClock.Instant = .now) async -> Int {
        let isExpired = { (entry: Idle) in
            now - entry.since >= self.idleTimeout && !self.provisioned.contains(entry.instance.id)
        }
        let expired = idle.filter(isExpired)
        idle.removeAll(where: isExpired)
        for entry in expired { await stopInstance(entry.instance) }
        return expired.count
    }

    /// Periodic upkeep: reclaims idle instances, drops idle ones that died, and starts provisioned ones to
    /// replace those that are gone; returns the `Provisioned Report` lines of the new ones.
    public func maintain() async -> [ProvisionedReport] {
        await reclaimIdle()
        let dead = idle.filter { !$0.instance.checkAlive() }
        idle.removeAll { entry in dead.contains { $0.instance === entry.instance } }
        for entry in dead { await stopInstance(entry.instance) }
        var reports: [ProvisionedReport] = []
        while !draining && provisioned.count < provisionedTarget {
            do { reports.append(try await startProvisioned()) } catch { break }
        }
        return reports
    }

    /// Stops every idle instance and refuses new invocations; waits up to `grace` for those in flight to
    /// finish, then stops their instances too.
    public func drain(grace: Duration = .zero) async {
        draining = true
        let all = idle
        idle = []
        for entry in all { await stopInstance(entry.instance) }
        let deadline = ContinuousClock.now + grace
        while inFlight > 0 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        for instance in busy.values { await instance.stop(grace: .zero) }
    }

    public var idleCount: Int { idle.count }
    public var busyCount: Int { inFlight }

    /// One instance as `faasbox ps` shows it.
    public struct InstanceInfo: Sendable, Codable {
        public let id: String
        public let state: String
        public let pid: Int32
        public let provisioned: Bool
        public let memoryBytes: Int64?
        /// An idle instance's program is frozen (FunctionConfig.freezeIdleAfter).
        public let frozen: Bool
    }

    /// The live instances: idle ones, then busy ones.
    public var instances: [InstanceInfo] {
        let info = { (instance: FunctionInstance, state: String) in
            InstanceInfo(
                id: instance.id, state: state, pid: instance.pid, provisioned: self.provisioned.contains(instance.id),
                memoryBytes: instance.memoryCurrent, frozen: instance.isSuspended)
        }
        return idle.map { info($0.instance, "idle") } + busy.values.sorted { $0.id < $1.id }.map { info($0, "busy") }
    }

    /// An idle instance; or, when an invocation in flight has answered its caller, the instance it is about to
    /// give back (microseconds, against a cold start's milliseconds: a client's next call reuses the instance
    /// of its last); else a new one.
    private func takeInstance(for invocation: Invocation) async throws(BootstrapError) -> (FunctionInstance, cold: Bool) {
        if config.kind == .job {
            guard case .event(let event) = invocation else { throw .invalidRequest("a job function takes an event") }
            return (try await FunctionInstance.coldStart(image: image, store: store, config: config, jobEvent: event), true)
        }
        while true {
            while let entry = idle.popLast() {
                if entry.instance.isAlive { return (entry.instance, false) }
                await stopInstance(entry.instance)  // died while idle
            }
            guard !draining, answeredInFlight.load(ordering: .acquiring) > 0 else { break }
            await withCheckedContinuation { instanceWaiters.append($0) }
        }
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        return (instance, true)
    }

    private func giveBack(_ instance: FunctionInstance) async {
        if draining || !instance.isAlive {
            await stopInstance(instance)
        } else {
            idle.append(Idle(instance: instance, since: .now))
            instance.suspend()
        }
    }

    private func stopInstance(_ instance: FunctionInstance) async {
        provisioned.remove(instance.id)
        await instance.stop()
    }
}
