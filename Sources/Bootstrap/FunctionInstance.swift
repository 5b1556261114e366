import ImageRuntime
import NIOCore
import Sandbox
import Synchronization
import SystemSupport

/// One function instance: an image's rootfs, a sandbox running its bootstrap, and the way to talk to it.
/// Made by `coldStart` (FunctionInstance+ColdStart.swift), invoked through `deliver`
/// (FunctionInstance+Deliver.swift); `stop()` is its one teardown path (kills every process, removes cgroup,
/// mounts and directories), and `removeLeftovers` runs the same steps for what a dead faasbox left.
public final class FunctionInstance: Sendable {
    public let id: String
    public let config: FunctionConfig
    public let timings: PhaseTimings
    public let output: OutputCollector
    /// The sandbox; the module's own (and its tests'): above Bootstrap an instance is what it offers here.
    package let process: SandboxProcess
    public let rootfs: InstanceRootfs
    /// How invocations reach this instance, found out when it became ready.
    public let protocolKind: ProtocolKind
    let runtimeServer: RuntimeAPIServer?
    let group: EventLoopGroup
    let connections: UpstreamConnections
    /// The teardown, once `stop` has begun it.
    private let stopping = Mutex<Task<Void, Never>?>(nil)
    /// Whether the program is frozen now (`suspend`), how long the last thaw took, and a count that each
    /// `suspend` and `resume` moves on (a freeze scheduled by a `suspend` happens only if nothing came since).
    private let freezing = Mutex(FreezeState())
    private struct FreezeState {
        var frozen = false
        var lastThaw: Duration?
        var generation: UInt64 = 0
        /// `stop` has begun: no freeze from now on (one landing after the teardown's thaw would leave the
        /// dying program frozen, and pid 1 waiting for it forever).
        var stopping = false
    }

    /// The ways an instance takes its invocations (contract §1).
    public enum ProtocolKind: String, Sendable {
        /// Web functions: the caller's request, forwarded to :9000.
        case http
        /// Image event functions: `POST /event-invoke` on :9000.
        case eventInvoke = "event-invoke"
        /// Custom runtimes: the event loop against the runtime API faasbox serves in the instance.
        case runtimeAPI = "runtime-api"
        /// Job functions: the event in `SCF_CUSTOM_CONTAINER_EVENT`; the run to exit is the invocation.
        case job
    }

    init(
        id: String, config: FunctionConfig, timings: PhaseTimings, output: OutputCollector, process: SandboxProcess,
        rootfs: InstanceRootfs, protocolKind: ProtocolKind, runtimeServer: RuntimeAPIServer?, group: EventLoopGroup
    ) {
        self.id = id
        self.config = config
        self.timings = timings
        self.output = output
        self.process = process
        self.rootfs = rootfs
        self.protocolKind = protocolKind
        self.runtimeServer = runtimeServer
        self.group = group
        connections = UpstreamConnections(group: group) { () throws -> OwnedFileDescriptor in
            try process.connect(port: SCFContract.functionPort)
        }
    }

    // MARK: what the pool asks of an instance

    /// Whether the instance's bootstrap still runs (an instance that exited is never reused).
    public var isAlive: Bool { process.exitStatus == nil }

    /// The pid of the instance's pid 1 on the host.
    public var pid: Int32 { process.pid }

    /// Memory the instance's cgroup is charged now, in bytes.
    public var memoryCurrent: Int64? { process.cgroup.memoryCurrent() }

    /// Peak memory of the instance's cgroup, in bytes.
    public var maxMemoryUsed: Int64? { process.cgroup.memoryPeak() }

    /// Whether the cgroup's OOM killer has struck the instance.
    var oomKilled: Bool { process.cgroup.oomKilled() }

    // MARK: freezing while idle

    /// Freezes the program once it has been idle for the config's `freezeIdleAfter` (unless an invocation
    /// comes first: `deliver` thaws, and cancels a freeze to come), where the host has a freezer: an idle
    /// instance spends no CPU, whatever it left running (SCF and Lambda freeze theirs too). pid 1 stays out of
    /// the freeze, so the instance still dies with the faasbox that started it.
    public func suspend() {
        guard let delay = config.freezeIdleAfter, process.canFreeze, isAlive else { return }
        let generation = freezing.withLock { state in
            state.generation &+= 1
            return state.generation
        }
        if delay <= .zero {
            freeze(ifStill: generation)
        } else {
            group.next().scheduleTask(in: delay.timeAmount) { self.freeze(ifStill: generation) }
        }
    }

    private func freeze(ifStill generation: UInt64) {
        freezing.withLock { state in
            guard state.generation == generation, !state.frozen, !state.stopping, isAlive else { return }
            if (try? process.setFrozen(true)) != nil { state.frozen = true }
        }
    }

    /// Thaws the program if `suspend` froze it, and cancels a freeze it scheduled.
    func resume() {
        freezing.withLock { state in
            state.generation &+= 1
            guard state.frozen else { return }
            let begin = ContinuousClock.now
            try? process.setFrozen(false)
            state.frozen = false
            state.lastThaw = ContinuousClock.now - begin
        }
    }

    /// Whether the instance still runs, looking closer than `isAlive` (for the periodic upkeep, not the warm
    /// path): a pid 1 killed from outside while the program was frozen cannot finish exiting until the program
    /// is thawed, which this then does (so it dies), and answers false.
    public func checkAlive() -> Bool {
        guard isAlive else { return false }
        guard isSuspended, process.isExiting else { return true }
        resume()
        return false
    }

    /// Whether `suspend` has frozen the program (and nothing has thawed it since).
    public var isSuspended: Bool { freezing.withLock { $0.frozen } }

    /// How long the last thaw took (the write that wakes the program), if there was one.
    public var lastThaw: Duration? { freezing.withLock { $0.lastThaw } }

    // MARK: teardown

    /// Stops the instance (SIGTERM, `grace` — by default the function's `stopGrace` — then SIGKILL of the whole
    /// cgroup), removes its cgroup, unmounts and deletes its rootfs. Idempotent.
    public func stop(grace: Duration? = nil) async {
        freezing.withLock { $0.stopping = true }
        // The first call tears down; any other call, concurrent or later, waits for that teardown to finish.
        let teardown = stopping.withLock { task in
            if let task { return task }
            let grace = grace ?? config.stopGrace
            let new = Task { await self.tearDown(grace: grace) }
            task = new
            return new
        }
        await teardown.value
    }

    private func tearDown(grace: Duration) async {
        await connections.close()
        runtimeServer?.api.close(.invocationFailed("the instance was stopped"))
        await process.stop(grace: grace)
        await runtimeServer?.stop()
        await Self.removeRootfs(rootfs)
    }

    /// Unmounts and deletes a rootfs: off the cooperative pool.
    static func removeRootfs(_ rootfs: InstanceRootfs) async {
        _ = await runBlocking { rootfs.remove() }
    }

    /// What a faasbox that died (kill -9, a crash, a power cut) left in `store`'s state dir: instances whose
    /// processes may still run, their cgroups and their rootfs mounts. Each is torn down as `stop` tears down
    /// an instance (every process killed through its cgroup, the cgroup removed, the rootfs unmounted and
    /// deleted); returns the ids it cleaned. `serve` calls it before it starts.
    public static func removeLeftovers(store: ImageStore) async -> [String] {
        let ids = store.instanceIDs()
        for id in ids {
            if let cgroup = CgroupHost.current.leftoverInstance(id) {
                await runBlocking {
                    cgroup.killAll()
                    try? cgroup.remove()
                }
            }
            await removeRootfs(store.instanceRootfs(id))
        }
        return ids
    }
}
