#if canImport(Glibc)
    import Glibc
#endif

/// An instance cgroup on the unified hierarchy.
struct CgroupV2: InstanceCgroup {
    let dir: String
    let freezer: FreezerCgroup?
    private let peak: OpenCgroupFile

    /// The cgroup at `dir`, with the program's cgroup below it if there is one.
    init(dir: String) {
        self.init(dir: dir, freezer: try? FreezerCgroup(existingBelow: dir, version: .v2))
    }

    private init(dir: String, freezer: FreezerCgroup?) {
        self.dir = dir
        self.freezer = freezer
        peak = OpenCgroupFile("\(dir)/memory.peak")
    }

    var procsFiles: [String] { ["\(dir)/cgroup.procs"] }
    var directories: [String] { [dir] }

    static let supervisorLeaf = "faasbox-supervisor"
    static let instancesGroup = "faasbox-instances"
    static let wanted = ["memory", "pids", "cpu"]

    /// Chooses where instance cgroups go beneath our own cgroup and enables the controllers there. v2's
    /// no-internal-process rule means our own processes first move into a leaf beside the instances.
    static func prepareBase(_ ownPath: String, available: [String]) -> CgroupHost {
        var own = ownPath
        if own.hasSuffix("/\(supervisorLeaf)") { own = String(own.dropLast(supervisorLeaf.count + 1)) }
        let controllers = wanted.filter(available.contains)
        let enable = controllers.map { "+\($0)" }.joined(separator: " ")
        let base = "\(own)/\(instancesGroup)"
        do {
            if own != "/sys/fs/cgroup" {
                let procs = CgroupFile.pids("\(own)/cgroup.procs")
                if !procs.isEmpty {
                    let leaf = "\(own)/\(supervisorLeaf)"
                    try CgroupFile.createDirectory(leaf)
                    for pid in procs { try? CgroupFile.write("\(leaf)/cgroup.procs", "\(pid)") }
                }
            }
            try CgroupFile.write("\(own)/cgroup.subtree_control", enable)
            try CgroupFile.createDirectory(base)
            try CgroupFile.write("\(base)/cgroup.subtree_control", enable)
        } catch {
            return .unavailable(reason: "cannot delegate \(enable) below \(own): \(error)")
        }
        return .v2(base: base, controllers: controllers)
    }

    /// The instance's cgroup; with `freezer`, the program's below it: the instance's enables no controller for
    /// its children (its subtree_control stays empty), so pid 1 may stay in it beside the program's cgroup, and
    /// the instance's limits cover both.
    static func create(base: String, controllers: [String], id: String, limits: ResourceLimits, freezer: Bool)
        throws(SandboxError) -> CgroupV2
    {
        let dir = "\(base)/\(id)"
        if mkdir(dir, 0o755) != 0 { throw .syscall(.current("mkdir", path: dir)) }
        var cgroup = CgroupV2(dir: dir, freezer: nil)
        do {
            if freezer { cgroup = CgroupV2(dir: dir, freezer: try FreezerCgroup.create(below: dir, version: .v2)) }
            if let bytes = limits.memoryBytes {
                try CgroupFile.write("\(dir)/memory.max", "\(bytes)")
                if CgroupFile.read("\(dir)/memory.swap.max") != nil { try CgroupFile.write("\(dir)/memory.swap.max", "0") }
            }
            if controllers.contains("pids"), let max = limits.pids { try CgroupFile.write("\(dir)/pids.max", "\(max)") }
            if controllers.contains("cpu"), let cpus = limits.cpus {
                try CgroupFile.write("\(dir)/cpu.max", "\(Int(cpus * 100_000)) 100000")
            }
            if controllers.contains("cpu"), let weight = limits.cpuWeight {
                try CgroupFile.write("\(dir)/cpu.weight", "\(min(10_000, max(1, weight)))")
            }
        } catch {
            try? cgroup.remove()
            throw error
        }
        return cgroup
    }

    func memoryPeak() -> Int64? { peak.int() }
    func memoryCurrent() -> Int64? { CgroupFile.int("\(dir)/memory.current") }
    func cpuUsage() -> Duration? { CgroupFile.keyed("\(dir)/cpu.stat", "usage_usec").map { .microseconds($0) } }
    func oomKilled() -> Bool { (CgroupFile.keyed("\(dir)/memory.events", "oom_kill") ?? 0) > 0 }
    func processes() -> [pid_t] { (CgroupFile.pids("\(dir)/cgroup.procs") + (freezer?.processes ?? [])).sorted() }

    /// cgroup.kill (descendants too; a frozen task dies of SIGKILL on v2), else SIGKILL to each process.
    func killAll() {
        if (try? CgroupFile.write("\(dir)/cgroup.kill", "1")) == nil {
            for pid in processes() { kill(pid, SIGKILL) }
        }
        try? freezer?.setFrozen(false)
    }

    func remove() throws(SandboxError) {
        if let freezer { try CgroupFile.removeDirectory(freezer.directory) }
        try CgroupFile.removeDirectory(dir)
    }
}
