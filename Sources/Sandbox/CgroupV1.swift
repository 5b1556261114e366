import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An instance cgroup on v1 hierarchies: one directory per controller (memory, pids, cpu, freezer).
struct CgroupV1: InstanceCgroup {
    let dirs: [String: String]
    let freezer: FreezerCgroup?
    private let peak: OpenCgroupFile?

    /// The cgroup in `dirs`, with the program's freezer cgroup below the freezer directory if there is one.
    init(dirs: [String: String]) {
        self.init(dirs: dirs, freezer: dirs["freezer"].flatMap { try? FreezerCgroup(existingBelow: $0, version: .v1) })
    }

    private init(dirs: [String: String], freezer: FreezerCgroup?) {
        self.dirs = dirs
        self.freezer = freezer
        peak = dirs["memory"].map { OpenCgroupFile("\($0)/memory.max_usage_in_bytes") }
    }

    /// The child joins through `tasks`, not `cgroup.procs`: moving the calling thread alone ("0") skips the
    /// kernel's global threadgroup lock, whose write side waits for an RCU grace period (~20 ms here). The
    /// child is single-threaded at that point, so the thread is the whole process.
    var procsFiles: [String] { dirs.keys.sorted().map { "\(dirs[$0]!)/tasks" } }
    var directories: [String] { dirs.keys.sorted().map { dirs[$0]! } }

    static func create(bases: [String: String], id: String, limits: ResourceLimits, freezer: Bool) throws(SandboxError)
        -> CgroupV1
    {
        var dirs: [String: String] = [:]
        do throws(SandboxError) {
            for (controller, base) in bases {
                try CgroupFile.createDirectory(base)
                let dir = "\(base)/\(id)"
                if mkdir(dir, 0o755) != 0 { throw .syscall(.current("mkdir", path: dir)) }
                dirs[controller] = dir
            }
        } catch {
            try? CgroupV1(dirs: dirs, freezer: nil).remove()
            throw error
        }
        var program: FreezerCgroup?
        do throws(SandboxError) {
            if freezer, let dir = dirs["freezer"], let base = bases["freezer"] {
                keepOneFrozen(in: base)
                program = try FreezerCgroup.create(below: dir, version: .v1)
            }
            let cgroup = CgroupV1(dirs: dirs, freezer: program)
            try cgroup.apply(limits)
            return cgroup
        } catch {
            try? CgroupV1(dirs: dirs, freezer: program).remove()
            throw error
        }
    }

    /// The v1 freezer turns a kernel static key on when a first cgroup freezes and off when the last one
    /// thaws: code patched on every CPU, which made each thaw ~195 µs here while one instance was all there
    /// was to freeze. An empty cgroup kept frozen (for as long as the hierarchy stands: it holds nothing) keeps
    /// the key on, and a thaw takes ~27 µs (docs/benchmarks.md). Once per base per process; best effort.
    private static func keepOneFrozen(in base: String) {
        let new = keptFrozen.withLock { $0.insert(base).inserted }
        guard new else { return }
        let dir = "\(base)/\(keeperName)"
        if mkdir(dir, 0o755) != 0 && errno != EEXIST { return }
        try? CgroupFile.write("\(dir)/freezer.state", "FROZEN")
    }

    private static let keptFrozen = Mutex<Set<String>>([])
    static let keeperName = "keep-frozen"

    private func apply(_ limits: ResourceLimits) throws(SandboxError) {
        if let memory = dirs["memory"], let bytes = limits.memoryBytes {
            try CgroupFile.write("\(memory)/memory.limit_in_bytes", "\(bytes)")
            // Memory+swap equal to memory: no swap.
            if CgroupFile.read("\(memory)/memory.memsw.limit_in_bytes") != nil {
                try CgroupFile.write("\(memory)/memory.memsw.limit_in_bytes", "\(bytes)")
            }
            try? CgroupFile.write("\(memory)/memory.swappiness", "0")
        }
        if let pids = dirs["pids"], let max = limits.pids {
            try CgroupFile.write("\(pids)/pids.max", "\(max)")
        }
        if let cpu = dirs["cpu"], let weight = limits.cpuWeight {
            try CgroupFile.write("\(cpu)/cpu.shares", "\(max(2, min(10_000, max(1, weight)) * 1024 / 100))")
        }
        if let cpu = dirs["cpu"], let cpus = limits.cpus {
            let period = 100_000
            try CgroupFile.write("\(cpu)/cpu.cfs_period_us", "\(period)")
            try CgroupFile.write("\(cpu)/cpu.cfs_quota_us", "\(Int(cpus * Double(period)))")
        }
    }

    func memoryPeak() -> Int64? { peak?.int() }
    func memoryCurrent() -> Int64? { dirs["memory"].flatMap { CgroupFile.int("\($0)/memory.usage_in_bytes") } }

    func cpuUsage() -> Duration? {
        (dirs["cpuacct"] ?? dirs["cpu"]).flatMap { CgroupFile.int("\($0)/cpuacct.usage") }.map { .nanoseconds($0) }
    }

    func oomKilled() -> Bool {
        guard let memory = dirs["memory"] else { return false }
        if let kills = CgroupFile.keyed("\(memory)/memory.oom_control", "oom_kill") { return kills > 0 }
        return (CgroupFile.int("\(memory)/memory.failcnt") ?? 0) > 0
    }

    func processes() -> [pid_t] {
        var all = Set<pid_t>(freezer?.processes ?? [])
        for dir in dirs.values { all.formUnion(CgroupFile.pids("\(dir)/cgroup.procs")) }
        return all.sorted()
    }

    /// Freeze, SIGKILL every task, thaw: nothing can fork away in between. The program's cgroup is thawed too
    /// (a v1 child keeps a state of its own): a frozen task dies only once thawed.
    func killAll() {
        let dir = dirs["freezer"]
        if let dir { try? CgroupFile.write("\(dir)/freezer.state", "FROZEN") }
        for _ in 0..<3 {
            let pids = processes()
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
        }
        try? freezer?.setFrozen(false)
        if let dir { try? CgroupFile.write("\(dir)/freezer.state", "THAWED") }
    }

    func remove() throws(SandboxError) {
        var firstError: SandboxError?
        if let freezer {
            do { try CgroupFile.removeDirectory(freezer.directory) } catch { firstError = error }
        }
        for dir in directories {
            do { try CgroupFile.removeDirectory(dir) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
