import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The cgroup of one instance, on whichever hierarchy the host gives us.
public protocol InstanceCgroup: Sendable {
    /// The files the child joins by writing "0" (one per v1 controller, one on v2).
    var procsFiles: [String] { get }
    /// The directories of the cgroup (for tests and teardown checks).
    var directories: [String] { get }
    /// Peak memory in bytes (memory.peak / memory.max_usage_in_bytes).
    func memoryPeak() -> Int64?
    /// Current memory in bytes.
    func memoryCurrent() -> Int64?
    /// CPU time used by the instance's processes, where the host accounts it.
    func cpuUsage() -> Duration?
    /// Whether the kernel's OOM killer killed a process of this cgroup.
    func oomKilled() -> Bool
    /// The pids still in the cgroup.
    func processes() -> [pid_t]
    /// Kills every process in the cgroup.
    func killAll()
    /// Removes the cgroup (after its processes are gone); retries briefly while the kernel finishes exits.
    func remove() throws(SandboxError)
    /// The program's own cgroup below the instance's, the one frozen while the instance is idle (pid 1 stays
    /// out of it: see faasbox-init); nil where the host has no freezer or it was not asked for.
    var freezer: FreezerCgroup? { get }
}

/// The cgroup an instance's program runs in, below the instance's own, frozen and thawed as a whole: a v1
/// freezer (`freezer.state`) or a cgroup v2 directory (`cgroup.freeze`, which needs no controller). Its state
/// file stays open: a freeze or a thaw is one pwrite(2).
public final class FreezerCgroup: Sendable {
    public let directory: String
    /// The file the program joins by writing "0": `tasks` (v1: moves the one thread, see CgroupV1) or
    /// `cgroup.procs` (v2).
    let joinFile: String
    let stateFile: String
    private let version: Version
    /// The state file, open for writing (faasbox-init gets a duplicate of it, to thaw at the lifeline's end).
    let state: OwnedFileDescriptor

    enum Version { case v1, v2 }

    /// The program's cgroup below `parent`, if it exists.
    init(existingBelow parent: String, version: Version) throws(SandboxError) {
        directory = "\(parent)/\(Self.name)"
        self.version = version
        joinFile = "\(directory)/" + (version == .v1 ? "tasks" : "cgroup.procs")
        stateFile = "\(directory)/" + (version == .v1 ? "freezer.state" : "cgroup.freeze")
        do { state = try OwnedFileDescriptor.open(stateFile, O_WRONLY | O_CLOEXEC) } catch { throw .syscall(error) }
    }

    /// Creates the program's cgroup below `parent`.
    static func create(below parent: String, version: Version) throws(SandboxError) -> FreezerCgroup {
        let dir = "\(parent)/\(name)"
        if mkdir(dir, 0o755) != 0 { throw .syscall(.current("mkdir", path: dir)) }
        return try FreezerCgroup(existingBelow: parent, version: version)
    }

    /// The directory's name below the instance's cgroup.
    static let name = "program"

    /// Freezes (`true`) or thaws every process in the cgroup. A freeze takes effect as each task next enters
    /// the kernel or is scheduled (v1 reads FREEZING meanwhile); a thaw wakes them at once.
    public func setFrozen(_ frozen: Bool) throws(SandboxError) {
        let word = version == .v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0")
        let n = word.withCString { pwrite(state.rawValue, $0, strlen($0), 0) }
        if n < 0 { throw .syscall(.current("write", path: stateFile)) }
    }

    /// Whether every task of the cgroup is frozen now (v1 FROZEN, not FREEZING; v2 `frozen 1` in cgroup.events).
    public var isFrozen: Bool {
        switch version {
        case .v1: return CgroupFile.read(stateFile)?.hasPrefix("FROZEN") == true
        case .v2: return CgroupFile.keyed("\(directory)/cgroup.events", "frozen") == 1
        }
    }

    var processes: [pid_t] { CgroupFile.pids("\(directory)/cgroup.procs") }
}

/// What the host offers, detected once per process from /proc/self/cgroup and /proc/self/mountinfo.
public enum CgroupHost: Sendable, CustomStringConvertible {
    /// The unified hierarchy has the memory controller: `base` is where instance cgroups go.
    case v2(base: String, controllers: [String])
    /// Memory is a v1 controller: per-controller base directories for instance cgroups.
    case v1(bases: [String: String])
    case unavailable(reason: String)

    public static let current: CgroupHost = detect()

    public var description: String {
        switch self {
        case .v2(let base, let controllers): return "cgroup v2 at \(base) (controllers: \(controllers.joined(separator: " ")))"
        case .v1(let bases):
            return "cgroup v1 (" + bases.keys.sorted().map { "\($0): \(bases[$0]!)" }.joined(separator: ", ") + ")"
        case .unavailable(let reason): return "no usable cgroup memory controller: \(reason)"
        }
    }

    /// How this host freezes an instance's program, as `faasbox doctor` says it; nil where it cannot.
    public var freezer: String? {
        switch self {
        case .v2: return "cgroup.freeze (cgroup v2)"
        case .v1(let bases): return bases["freezer"].map { _ in "the v1 freezer controller" }
        case .unavailable: return nil
        }
    }

    /// Creates the cgroup of one instance with `limits`; with `freezer`, and where the host can freeze, the
    /// program's cgroup below it (`InstanceCgroup.freezer`).
    public func createInstance(_ id: String, limits: ResourceLimits, freezer: Bool = false) throws(SandboxError)
        -> InstanceCgroup
    {
        switch self {
        case .v2(let base, let controllers):
            return try CgroupV2.create(base: base, controllers: controllers, id: id, limits: limits, freezer: freezer)
        case .v1(let bases):
            return try CgroupV1.create(bases: bases, id: id, limits: limits, freezer: freezer)
        case .unavailable(let reason):
            throw .cgroup("cannot create a cgroup for instance \(id): \(reason)")
        }
    }

    /// The cgroup of instance `id` if it still exists: one left by a faasbox that died without tearing its
    /// instances down. The caller kills its processes (`killAll`) and removes it.
    public func leftoverInstance(_ id: String) -> InstanceCgroup? {
        switch self {
        case .v2(let base, _):
            let dir = "\(base)/\(id)"
            return FileManager.default.fileExists(atPath: dir) ? CgroupV2(dir: dir) : nil
        case .v1(let bases):
            let dirs = bases.mapValues { "\($0)/\(id)" }.filter { FileManager.default.fileExists(atPath: $0.value) }
            return dirs.isEmpty ? nil : CgroupV1(dirs: dirs)
        case .unavailable: return nil
        }
    }

    static func detect() -> CgroupHost {
        let selfText = FileSystem.readProcFile("/proc/self/cgroup")
        let mountText = FileSystem.readProcFile("/proc/self/mountinfo")
        if selfText.isEmpty || mountText.isEmpty { return .unavailable(reason: "cannot read /proc/self/cgroup or mountinfo") }
        let membership = parseMembership(selfText)
        let mounts = parseMounts(mountText)
        if let unified = mounts.first(where: { $0.v2 }), let relative = membership[""] {
            let path = unified.hostPath(for: relative)
            let available =
                CgroupFile.read("\(path)/cgroup.controllers")?.split(whereSeparator: \.isWhitespace).map(String.init) ?? []
            if available.contains("memory") {
                return CgroupV2.prepareBase(path, available: available)
            }
        }
        var bases: [String: String] = [:]
        // cpuacct (CPU time used) where it is a hierarchy of its own; co-mounted controllers share one directory.
        for controller in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
            guard let relative = membership[controller],
                let mount = mounts.first(where: { !$0.v2 && $0.controllers.contains(controller) })
            else { continue }
            let base = mount.hostPath(for: relative) + "/faasbox"
            if !bases.values.contains(base) { bases[controller] = base }
        }
        if bases["memory"] != nil { return .v1(bases: bases) }
        return .unavailable(reason: "the memory controller is on neither cgroup v2 nor v1")
    }

    /// "N:controllers:path" lines → controller (or "" for v2) → path.
    static func parseMembership(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[1].isEmpty { out[""] = String(parts[2]) }
            for controller in parts[1].split(separator: ",") { out[String(controller)] = String(parts[2]) }
        }
        return out
    }

    struct CgroupMount {
        var root: String
        var mountPoint: String
        var v2: Bool
        var controllers: [String]

        func hostPath(for relative: String) -> String {
            var rel = relative
            if root != "/" && rel.hasPrefix(root) { rel = String(rel.dropFirst(root.count)) }
            if rel == "/" { rel = "" }
            return mountPoint + rel
        }
    }

    static func parseMounts(_ text: String) -> [CgroupMount] {
        text.split(separator: "\n").compactMap { line in
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return nil }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { return nil }
            let fstype = right[0]
            guard fstype == "cgroup" || fstype == "cgroup2" else { return nil }
            let options = right[2].split(separator: ",").map(String.init)
            return CgroupMount(root: String(left[3]), mountPoint: String(left[4]), v2: fstype == "cgroup2", controllers: options)
        }
    }
}

/// Small file helpers for cgroupfs.
enum CgroupFile {
    static func write(_ path: String, _ value: String) throws(SandboxError) {
        let file: OwnedFileDescriptor
        do { file = try .open(path, O_WRONLY) } catch { throw .syscall(error) }
        let n = value.withCString { Glibc.write(file.rawValue, $0, strlen($0)) }
        if n < 0 { throw .syscall(.current("write", path: path)) }
    }

    /// The whole file (these files are small).
    static func read(_ path: String) -> String? {
        (try? FileSystem.read(path, limit: 1 << 20)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func int(_ path: String) -> Int64? {
        read(path).flatMap { Int64($0.prefix { !$0.isWhitespace }) }
    }

    /// The value of `key` in a flat-keyed file such as memory.events.
    static func keyed(_ path: String, _ key: String) -> Int64? {
        guard let text = read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 && parts[0] == key { return Int64(parts[1]) }
        }
        return nil
    }

    static func pids(_ path: String) -> [pid_t] {
        (read(path) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    static func createDirectory(_ path: String) throws(SandboxError) {
        do { try FileSystem.createDirectory(path) } catch { throw .syscall(error) }
    }

    /// rmdir, retried for up to ~1 s while exiting tasks leave the cgroup.
    static func removeDirectory(_ path: String) throws(SandboxError) {
        for attempt in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            guard errno == EBUSY else { throw .syscall(.current("rmdir", path: path)) }
            usleep(attempt < 20 ? 500 : 5000)
        }
        throw .syscall(.current("rmdir", path: path))
    }
}

/// A cgroup file read on every invocation (the peak memory of its REPORT line), kept open: each read is a
/// pread(2) at offset 0, which has the kernel format the file anew, without an open and a close per read
/// (docs/benchmarks.md, "Warm path"). The descriptor does not keep the cgroup from being removed (reads then
/// fail, ENODEV). Nil values when the file could not be opened.
final class OpenCgroupFile: Sendable {
    private let descriptor: OwnedFileDescriptor?

    init(_ path: String) {
        descriptor = try? OwnedFileDescriptor.open(path, O_RDONLY)
    }

    /// The decimal number the file starts with.
    func int() -> Int64? {
        guard let descriptor else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer -> Int64? in
            let n = pread(descriptor.rawValue, buffer.baseAddress, buffer.count, 0)
            guard n > 0 else { return nil }
            var value: Int64 = 0
            var digits = 0
            for byte in buffer[..<n] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 18 else { break }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }
}
