import Bootstrap
import Foundation
import ImageRuntime
import Logging
import Synchronization
import SystemSupport

/// What `faasbox serve` does, without HTTP: the deployed functions and their pools, sync invocation, the
/// durable async queue and its dispatcher, the invocation logs, the metrics, and upkeep (idle reclaim,
/// provisioned instances, retention). The HTTP API (`ServiceAPI`) is a thin layer over it.
public final class FunctionService: Sendable {
    public struct Options: Sendable {
        public var policy = AsyncPolicy()
        /// How long in-flight invocations may run on after a graceful shutdown begins.
        public var shutdownGrace: Duration = .seconds(10)
        /// How often idle instances are reclaimed and provisioned ones replaced.
        public var maintenanceInterval: Duration = .seconds(1)
        /// What callers may take from the host (mounts, host network, image paths): the operator's choice.
        public var host = HostPolicy()
        /// What the invocation logs may take (docs/limits.md).
        public var logs = LogLimits()
        /// How long an instance is idle before it is frozen (FunctionConfig.freezeIdleAfter); nil: never.
        public var freezeIdleAfter: Duration? = SCFContract.defaultFreezeIdleAfter
        public init() {}
    }

    struct Deployment: Sendable {
        let spec: FunctionSpec
        let validated: FunctionSpec.Validated
        let pool: FunctionPool
        let deployedAt: Date
    }

    public let store: ImageStore
    let db: StateDatabase
    let queue: EventQueue
    let metrics = ServiceMetrics()
    let log: InvocationLog
    let options: Options
    let logger: Logger
    private let deployments = Mutex<[String: Deployment]>([:])
    /// Rung when the dispatcher may have work (AsyncDispatcher.swift).
    let doorbell = Doorbell()
    let stopping = AtomicFlag()
    private let drained = AtomicFlag()

    init(store: ImageStore, db: StateDatabase, queue: EventQueue, options: Options, logger: Logger) {
        self.store = store
        self.db = db
        self.queue = queue
        self.options = options
        self.logger = logger
        let metrics = self.metrics
        log = InvocationLog(
            db: db, limits: options.logs,
            dropped: { function, reason, count in metrics.countLogsDropped(function: function, reason: reason, count: count) },
            report: { message in logger.error("\(message)") })
    }

    /// Opens the service on `store`'s state dir: the database, events a dead faasbox left running put back
    /// in the queue, and the saved functions deployed again (their provisioned instances started).
    public static func open(store: ImageStore, options: Options = Options(), logger: Logger) async throws(ServiceError)
        -> FunctionService
    {
        let db = try StateDatabase(path: "\(store.root)/faasbox.sqlite")
        let queue = try await EventQueue(db: db, policy: options.policy)
        let service = FunctionService(store: store, db: db, queue: queue, options: options, logger: logger)
        let recovered = try await queue.recover()
        if recovered > 0 { logger.notice("\(recovered) async events were running when faasbox stopped; queued again") }
        for (name, spec) in try await db.functions() {
            do { _ = try await service.deploy(name, spec, save: false) } catch {
                logger.error("could not deploy \(name) again: \(error)", metadata: ["function": "\(name)"])
            }
        }
        return service
    }

    // MARK: functions

    /// The result of a deploy: the function as it now is, and its provisioned instances' reports.
    public struct Deployed: Codable, Sendable {
        public let name: String
        public let spec: FunctionSpec
        public let provisionedReports: [String]
    }

    /// Deploys `name` (or replaces it: the old instances are drained and stopped, the queue kept). The image is
    /// pulled and verified first, and provisioned instances started, so a bad image or a function that cannot
    /// start is refused before anything changes.
    public func deploy(_ name: String, _ spec: FunctionSpec, save: Bool = true) async throws(ServiceError) -> Deployed {
        var validated: FunctionSpec.Validated
        do { validated = try options.host.admit(try spec.validated(name: name), store: store) } catch {
            throw .invalidSpec(error)
        }
        var config = try await rootIDs(name, validated.config)
        config.freezeIdleAfter = options.freezeIdleAfter
        validated = validated.with(image: validated.image, config: config)
        do { _ = try await store.pull(validated.image) } catch {
            // What the failed pull stored (blobs of a junk archive, layers of a broken image) is referenced by no
            // image: it goes now, not at the next `faasbox gc` (under the store's lock, beside other pulls).
            let store = self.store
            let freed = await runBlocking { store.collectGarbage() }
            if freed.layers + freed.blobs > 0 {
                logger.info("removed \(freed.blobs) blobs and \(freed.layers) layers a failed deploy of \(name) stored")
            }
            throw .invalidSpec(FunctionSpec.Invalid(field: "image", reason: error.description))
        }
        let pool = FunctionPool(
            image: validated.image, store: store, config: validated.config, concurrency: validated.concurrency,
            idleTimeout: validated.idleTimeout)
        var reports: [ProvisionedReport] = []
        do { reports = try await pool.provision(validated.provisioned) } catch {
            await pool.drain()
            throw .invocation(.instance(error))
        }
        if save { try await db.saveFunction(name, spec) }
        let deployment = Deployment(spec: spec, validated: validated, pool: pool, deployedAt: Date())
        let old = deployments.withLock { $0.updateValue(deployment, forKey: name) }
        await logProvisioned(name, reports)
        if let old { Task { await old.pool.drain(grace: old.validated.config.timeout) } }
        doorbell.ring()
        logger.info("deployed \(name)", metadata: ["function": "\(name)", "image": "\(validated.image)"])
        return Deployed(name: name, spec: spec, provisionedReports: reports.map(\.line))
    }

    /// Host ids for root in this function's image: 65,536 of its own from 2^31 up (far from /etc/subuid's usual
    /// ranges), so that no two functions' files or processes share an owner.
    private func rootIDs(_ name: String, _ config: FunctionConfig) async throws(ServiceError) -> FunctionConfig {
        let slot = try await db.idRangeSlot(name)
        let base = UInt64(1) << 31 + UInt64(slot) << 16
        guard base + (1 << 16) <= UInt64(UInt32.max) else {
            throw .invalidRequest("no host id range left for another function (32,767 functions have had one)")
        }
        var config = config
        config.rootUserNamespace = FunctionConfig.UserNamespace(hostID: UInt32(base))
        return config
    }

    /// Deletes `name`: its instances are drained and stopped, its queued events go to the dead letters.
    public func remove(_ name: String) async throws(ServiceError) {
        guard let old = deployments.withLock({ $0.removeValue(forKey: name) }) else { throw .noSuchFunction(name) }
        try await db.deleteFunction(name)
        try await queue.abandon(function: name)
        await old.pool.drain(grace: old.validated.config.timeout)
        // Its logs go with it (and the space they took), once its last invocations have written theirs.
        await log.flush()
        try await db.deleteLogs(function: name)
        await log.recount()
    }

    func deployment(_ name: String) throws(ServiceError) -> Deployment {
        guard let d = deployments.withLock({ $0[name] }) else { throw .noSuchFunction(name) }
        return d
    }

    /// One function as `GET /functions/{name}` shows it.
    public struct FunctionInfo: Codable, Sendable {
        public let name: String
        public let spec: FunctionSpec
        public let deployedAt: Date
        public let instances: [FunctionPool.InstanceInfo]
        /// Async events by state: queued, running, succeeded, dead.
        public let events: [String: Int]
    }

    public func info(_ name: String) async throws(ServiceError) -> FunctionInfo {
        let d = try deployment(name)
        return FunctionInfo(
            name: name, spec: d.spec, deployedAt: d.deployedAt, instances: await d.pool.instances,
            events: try await queue.counts(function: name))
    }

    /// Whether `name` answers `/web/` on the TCP listener without a signature (deployed with `"public": true`).
    public func isPublic(_ name: String) -> Bool { deployments.withLock { $0[name]?.spec.public == true } }

    public var functionNames: [String] { deployments.withLock { $0.keys.sorted() } }

    /// Every live instance, by function.
    public func instances() async -> [String: [FunctionPool.InstanceInfo]] {
        var out: [String: [FunctionPool.InstanceInfo]] = [:]
        for name in functionNames {
            if let d = try? deployment(name) { out[name] = await d.pool.instances }
        }
        return out
    }

    // MARK: invocations

    static func newRequestID() -> String { RequestID.make() }

    /// Invokes an event or job function and waits for its result (the contract's shape; `Log` when `tail`).
    public func invoke(_ name: String, event: [UInt8], tail: Bool) async throws(ServiceError) -> InvokeResult {
        if stopping.isSet { throw .shuttingDown }
        let d = try deployment(name)
        let event = try Self.checkEvent(event, kind: d.validated.config.kind, name: name, delivery: .sync)
        let outcome = await d.pool.run(.event(event), requestID: Self.newRequestID())
        let log = await finish(name, d, outcome)
        return InvokeResult(outcome, log: tail ? log.utf8Suffix(SCFContract.tailLogBytes) : nil)
    }

    /// Forwards a web function's request; the response goes to `sink` as it arrives. Returns the outcome (its
    /// result is the failure when the function could not answer).
    public func invokeWeb(_ name: String, request: HTTPRequest, sink: ResponseSink) async throws(ServiceError)
        -> FunctionPool.Outcome
    {
        if stopping.isSet { throw .shuttingDown }
        let d = try deployment(name)
        guard d.validated.config.kind == .web else {
            throw .invalidRequest(
                "\(name) is an \(d.validated.config.kind) function: invoke it with POST /functions/\(name)/invocations")
        }
        // The caller's response ended with the function's (`sink.end`); the log and metrics come after.
        let outcome = await d.pool.run(.http(request), requestID: Self.newRequestID(), sink: sink)
        _ = await finish(name, d, outcome)
        return outcome
    }

    /// Queues an event for an async invocation; returns its request id once the event is stored.
    public func enqueue(_ name: String, event: [UInt8]) async throws(ServiceError) -> String {
        if stopping.isSet { throw .shuttingDown }
        let d = try deployment(name)
        let event = try Self.checkEvent(event, kind: d.validated.config.kind, name: name, delivery: .async)
        let requestID = Self.newRequestID()
        try await queue.enqueue(function: name, requestID: requestID, payload: event.bytes)
        doorbell.ring()
        return requestID
    }

    /// The event as its function's kind takes it, checked once here, where it enters the service.
    static func checkEvent(_ event: [UInt8], kind: FunctionConfig.Kind, name: String, delivery: Event.Delivery)
        throws(ServiceError) -> Event
    {
        if kind == .web {
            throw .invalidRequest("\(name) is a web function: call it through /web/\(name)/")
        }
        do { return try Event(event, kind: kind, delivery: delivery) } catch { throw .invocation(.instance(error)) }
    }

    /// An async event's state, tries and result.
    public func status(_ name: String, requestID: String) async throws(ServiceError) -> EventQueue.Status {
        guard let status = try await queue.status(requestID), status.function == name else { throw .noSuchRequest(requestID) }
        return status
    }

    /// Logs an invocation (START, output, END, REPORT, and the Init Report on a cold start), counts it in the
    /// metrics; returns the log text.
    func finish(_ name: String, _ d: Deployment, _ outcome: FunctionPool.Outcome) async -> String {
        metrics.record(function: name, outcome: outcome)
        // One line per invocation in serve's own log (the function's output is in its invocation log).
        let kind = outcome.coldStart.map { "cold \(String(format: "%.1f", $0.coldstart.milliseconds)) ms" } ?? "warm"
        logger.info(
            "invocation \(outcome.requestID) of \(name): \(outcome.code == 0 ? "ok" : "error \(outcome.code)"), \(kind), \(String(format: "%.2f", outcome.duration.milliseconds)) ms",
            metadata: ["function": "\(name)"])
        let text = InvocationLog.text(of: outcome, memoryMB: d.validated.config.memoryMB)
        await log.append(LogEntry(requestID: outcome.requestID, function: name, at: StateDatabase.now(), text: text))
        // A freed concurrency slot matters to the dispatcher only when the function has async events waiting (no
        // wake-up per web or sync call).
        if await queue.hasEvents(name) { doorbell.ring() }
        return text
    }

    func logProvisioned(_ name: String, _ reports: [ProvisionedReport]) async {
        for report in reports {
            logger.info("\(report.line)", metadata: ["function": "\(name)"])
            await log.append(LogEntry(requestID: report.instanceID, function: name, at: StateDatabase.now(), text: report.line))
        }
    }

    /// The stored logs of `name`: one invocation's (every try of it), or the latest `limit`.
    public func logs(_ name: String, requestID: String?, limit: Int = 100) async throws(ServiceError) -> [LogEntry] {
        _ = try deployment(name)
        await log.flush()
        return try await db.logs(function: name, requestID: requestID, limit: limit)
    }

    /// The Prometheus text of the metrics, with the gauges read now.
    public func metricsText() async -> String {
        var instances: [String: [String: Int]] = [:]
        for (name, list) in await self.instances() {
            instances[name] = Dictionary(grouping: list, by: \.state).mapValues(\.count)
        }
        metrics.setGauges(instances: instances, queueDepth: await queue.depthByFunction)
        return metrics.text
    }

    /// Refuses new invocations from now on and stops the dispatcher and upkeep loops; `shutdown` finishes.
    public func beginShutdown() {
        _ = stopping.setOnce()
        doorbell.ring()
    }

    /// Graceful shutdown: refuses new invocations, gives those in flight `shutdownGrace` to finish, stops
    /// every instance and writes the logs out.
    public func shutdown() async {
        beginShutdown()
        guard drained.setOnce() else { return }
        logger.notice("shutting down: in-flight invocations have \(options.shutdownGrace) to finish")
        let all = deployments.withLock { $0.values.map(\.pool) }
        await withTaskGroup(of: Void.self) { group in
            for pool in all { group.addTask { await pool.drain(grace: self.options.shutdownGrace) } }
        }
        await log.flush()
        logger.notice("every instance stopped")
    }
}
