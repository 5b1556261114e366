import Bootstrap
import Foundation
import ImageRuntime

/// `faasbox bench`: repeated cold starts and warm invocations in one process, and sandbox-only starts.
public struct Benchmark: Sendable {
    public let store: ImageStore
    public let config: FunctionConfig

    public init(store: ImageStore, config: FunctionConfig) {
        self.store = store
        self.config = config
    }

    /// How the cold starts are made.
    public struct ColdOptions: Sendable {
        /// Evict the image (its record, layers and blobs) before each start: PullCode is then a fresh unpack.
        public var freshPull = false
        /// Cold starts in flight at once.
        public var concurrency = 1
        public init() {}
    }

    /// `count` cold starts of `image`, each answering one invocation (with the image stored first, unless
    /// `freshPull`). With `concurrency` > 1 they overlap; `throughput` is then cold starts per second of wall time.
    public func coldStarts(
        image: String, invocation: Invocation, count: Int, options: ColdOptions = ColdOptions(),
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> (samples: [Samples], throughput: Double) {
        if !options.freshPull { _ = try await store.pull(image) }
        var pull = Samples("PullCode"), runtime = Samples("InitRuntime"), function = Samples("InitFunction")
        var overhead = Samples("Overhead"), cold = Samples("Coldstart"), first = Samples("first response")
        let clock = ContinuousClock()
        let begin = clock.now
        try await withThrowingTaskGroup(of: (PhaseTimings, Duration).self) { group in
            var started = 0
            var done = 0
            func startOne() {
                let i = started
                started += 1
                group.addTask {
                    try await self.oneColdStart(image: image, invocation: invocation, index: i, evict: options.freshPull)
                }
            }
            while started < min(count, max(1, options.concurrency)) { startOne() }
            while let (timings, response) = try await group.next() {
                pull.add(timings.pullCode)
                runtime.add(timings.initRuntime)
                function.add(timings.initFunction)
                overhead.add(timings.overhead)
                cold.add(timings.coldstart)
                first.add(response)
                done += 1
                progress(done)
                if started < count { startOne() }
            }
        }
        let wall = (clock.now - begin).milliseconds / 1000
        return ([pull, runtime, function, overhead, cold, first], wall > 0 ? Double(count) / wall : 0)
    }

    private func oneColdStart(image: String, invocation: Invocation, index: Int, evict: Bool) async throws
        -> (PhaseTimings, Duration)
    {
        if evict {
            _ = try? store.removeImage(image)
            _ = store.collectGarbage()
        }
        let clock = ContinuousClock()
        let begin = clock.now
        var jobEvent: Event?
        if config.kind == .job, case .event(let event) = invocation { jobEvent = event }
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config, jobEvent: jobEvent)
        do {
            _ = try await instance.deliver(invocation, requestID: "bench-\(index)", timeout: config.timeout)
        } catch {
            await instance.stop(grace: .zero)
            throw error
        }
        let firstResponse = clock.now - begin
        await instance.stop(grace: .zero)
        return (instance.timings, firstResponse)
    }

    /// How many idle warm instances this process holds, and what each costs.
    public struct IdleReport: Sendable {
        /// Instances started, invoked once and kept (less than asked if one failed to start).
        public let instances: Int
        /// Why the next one could not start, if one could not.
        public let stoppedBy: String?
        /// Growth of faasbox's resident memory per instance (its own bookkeeping, pipes, event-loop channels).
        public let faasboxBytesPerInstance: Double
        /// Memory charged to each instance's cgroup (its processes, /tmp, page cache), the mean.
        public let instanceBytesPerInstance: Double
        /// Descriptors faasbox holds per instance.
        public let descriptorsPerInstance: Double
    }

    /// Starts `count` instances one after another, invokes each once, keeps them all idle, measures, then stops
    /// them. Stops starting at the first failure (and says why). faasbox's share is measured process-wide (resident
    /// memory, open descriptors): run it in a process that does nothing else, as `faasbox bench --idle` does.
    public func idleInstances(
        image: String, invocation: Invocation, count: Int, progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> IdleReport {
        _ = try await store.pull(image)
        let rssBefore = Self.residentBytes(), fdsBefore = Self.openDescriptors()
        var instances: [FunctionInstance] = []
        var stoppedBy: String?
        for i in 0..<count {
            do {
                let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
                instances.append(instance)
                _ = try await instance.deliver(invocation, requestID: "idle-\(i)", timeout: config.timeout)
            } catch {
                stoppedBy = "instance \(i + 1): \(error)"
                break
            }
            progress(i + 1)
        }
        try? await Task.sleep(for: .milliseconds(200))  // let the last outputs settle
        let n = Double(max(instances.count, 1))
        let charged = instances.compactMap(\.memoryCurrent).reduce(0, +)
        let report = IdleReport(
            instances: instances.count, stoppedBy: stoppedBy,
            faasboxBytesPerInstance: Double(Self.residentBytes() - rssBefore) / n,
            instanceBytesPerInstance: Double(charged) / n,
            descriptorsPerInstance: Double(Self.openDescriptors() - fdsBefore) / n)
        await withTaskGroup(of: Void.self) { group in
            for instance in instances { group.addTask { await instance.stop(grace: .zero) } }
        }
        return report
    }

    static func residentBytes() -> Int64 {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let kb = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?
            .split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap { Int64($0) }
        return (kb ?? 0) * 1024
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    /// `count` invocations of one warm instance, back to back ("warm invoke"); then `count / 4` pairs, each
    /// after `gap` idle: one with the instance left as it was ("after idle"), one with it frozen meanwhile and
    /// thawed by the invocation ("after freeze"), interleaved; and the thaw's own time (the write that wakes
    /// the program, "thaw"). Where the host cannot freeze, only the first.
    public func warmInvocations(
        image: String, invocation: Invocation, count: Int, gap: Duration = .milliseconds(20),
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> [Samples] {
        var config = self.config
        config.freezeIdleAfter = .zero  // suspend() freezes at once (called only for the frozen half)
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        var warm = Samples("warm invoke"), idle = Samples("after idle"), frozen = Samples("after freeze")
        var thaw = Samples("thaw")
        let clock = ContinuousClock()
        let pairs = instance.process.canFreeze ? count / 4 : 0
        do {
            for i in 0..<count {
                let begin = clock.now
                _ = try await instance.deliver(invocation, requestID: "warm-\(i)", timeout: config.timeout)
                warm.add(clock.now - begin)
                progress(i + 1)
            }
            for i in 0..<pairs {
                for freeze in [false, true] {
                    if freeze { instance.suspend() }
                    try await Task.sleep(for: gap)
                    if freeze && !instance.process.isFrozen { continue }  // not frozen yet: not a sample
                    let begin = clock.now
                    _ = try await instance.deliver(invocation, requestID: "gap-\(i)-\(freeze)", timeout: config.timeout)
                    if freeze { frozen.add(clock.now - begin) } else { idle.add(clock.now - begin) }
                    if freeze, let last = instance.lastThaw { thaw.add(last) }
                }
            }
        } catch {
            await instance.stop(grace: .zero)
            throw error
        }
        await instance.stop(grace: .zero)
        return [warm] + (pairs > 0 ? [idle, frozen, thaw] : [])
    }

    /// `count` sandboxes over the image's rootfs running `program` to its exit: InitRuntime (spawn until
    /// exec) and the whole run until the sandbox is gone, to compare with `runc run` and `bwrap`.
    public func sandboxRuns(image: String, program: [String], count: Int) async throws -> [Samples] {
        let pulled = try await store.pull(image)
        var runtime = Samples("InitRuntime"), total = Samples("spawn to exit")
        for i in 0..<count {
            let run = try await SandboxRun.run(
                program, image: pulled, store: store, name: "bench-\(i)-\(UInt32.random(in: 0...UInt32.max))")
            runtime.add(run.initRuntime)
            total.add(run.total)
        }
        return [runtime, total]
    }
}
