/// Everything the sandbox needs to start one process: a value, with the contract's defaults.
public struct SandboxSpec: Sendable {
    /// The root filesystem to pivot into (a directory the caller owns, e.g. an overlay mount).
    public var rootfs: String
    /// argv; argv[0] is the program, searched in PATH of `env` when it has no slash.
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory = "/"
    public var user = User.default
    public var hostname = "faasbox"
    public var limits = ResourceLimits()
    public var network = NetworkMode.isolated
    /// Host paths bound into the rootfs (after /proc, /dev and /tmp; before the rootfs turns read-only).
    public var mounts: [Mount] = []
    /// Capability numbers kept (bounding, permitted, effective, inheritable, ambient); empty drops them all.
    public var capabilities: [Int] = []
    public var noNewPrivileges = true
    /// The seccomp filter; nil for none. Loading one needs `noNewPrivileges` (or CAP_SYS_ADMIN kept).
    public var seccomp: SeccompProfile? = .default
    /// pid 1 is faasbox-init, a tiny static program that forwards signals and reaps zombies, and the program
    /// runs as its child; otherwise the program is pid 1.
    public var initProcess = true
    /// The program runs in a cgroup of its own below the instance's, which `SandboxProcess.setFrozen` freezes
    /// and thaws (pid 1, faasbox-init, stays out of it). Needs `initProcess`; ignored where the host has no
    /// freezer (then `SandboxProcess.canFreeze` is false).
    public var freezable = false
    /// A user namespace of its own, nil for none (faasbox runs as root on the host and drops to `user`).
    public var userNamespace: UserNamespace?
    /// A unique name for the instance (its cgroup's name).
    public var instanceID: String

    public init(rootfs: String, arguments: [String], environment: [String] = SandboxSpec.defaultEnvironment, instanceID: String) {
        self.rootfs = rootfs
        self.arguments = arguments
        self.environment = environment
        self.instanceID = instanceID
    }

    public static let defaultEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    public struct User: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var groups: [UInt32] = []
        public init(uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
        /// A non-root user that no host account is expected to have.
        public static let `default` = User(uid: 10001, gid: 10001)
        public static let root = User(uid: 0, gid: 0)
    }

    /// Ids 0..<count inside the sandbox are host ids hostID..<hostID+count, for users and groups alike: root
    /// inside (used only during setup; the program runs as `user`) is an unprivileged id on the host, and host
    /// files owned by ids outside the range appear as the overflow id (65534).
    public struct UserNamespace: Sendable, Equatable {
        public var hostID: UInt32
        public var count: UInt32
        public init(hostID: UInt32, count: UInt32) {
            self.hostID = hostID
            self.count = count
        }
        /// The range /etc/subuid conventionally gives root's containers.
        public static let `default` = UserNamespace(hostID: 100_000, count: 65_536)

        /// The line written to /proc/PID/uid_map and gid_map.
        var mapLine: String { "0 \(hostID) \(count)\n" }

        /// The host id of an id inside the namespace.
        public func hostID(of id: UInt32) -> UInt32 { hostID + id }
    }

    /// A host file or directory bound at `target` (an absolute path inside the sandbox), read-only unless asked.
    /// Mount points missing in the image are created (never through a symlink of the image).
    /// The whole tree at `source` is bound (submounts too), and all of it is nosuid and nodev, and read-only
    /// unless `readOnly` is false.
    public struct Mount: Sendable, Equatable {
        public var source: String
        public var target: String
        public var readOnly: Bool
        /// Open `source` only beneath this directory (openat2 RESOLVE_BENEATH): a symlink that leads out of it,
        /// even one swapped in after the source was checked, is refused.
        public var within: String?
        public init(source: String, target: String, readOnly: Bool = true, within: String? = nil) {
            self.source = source
            self.target = target
            self.readOnly = readOnly
            self.within = within
        }

        /// Why a target cannot be mounted on, or nil: /proc and /dev are the sandbox's own (a target through
        /// /proc/self/root would reach the host's root at mount time), /tmp is the instance's tmpfs.
        public static func refusedTarget(_ target: String) -> String? {
            let parts = target.split(separator: "/")
            guard let first = parts.first else { return "cannot be / (the image's root)" }
            if first == "proc" || first == "dev" { return "is under /\(first), which the sandbox provides" }
            if first == "tmp" { return "is /tmp or under it, the instance's own tmpfs" }
            return nil
        }
    }

    public enum NetworkMode: Sendable, Equatable {
        /// A network namespace of its own with only `lo`.
        case isolated
        /// The host's network namespace.
        case host
        /// A namespace made beforehand (see `NetworkNamespace`), e.g. to listen in it before the program starts.
        case namespace(NetworkNamespace)
    }
}

/// Resource limits of one instance. The memory limit is the caller's to give (a function's comes from its
/// config, Bootstrap's SCFContract has the default); the others default to SCF's quotas.
public struct ResourceLimits: Sendable, Equatable {
    /// nil: no memory limit.
    public var memoryBytes: Int64?
    public var pids: Int? = 1024
    /// CPU bandwidth in cores (cpu.max / cfs_quota); nil for no quota.
    public var cpus: Double?
    /// The instance's share of the CPU when it is contended, on cgroup v2's scale (1–10000; a cgroup's default
    /// is 100): cpu.weight, or cpu.shares × 1024/100 on v1. nil: the kernel's default.
    public var cpuWeight: Int?
    public var tmpBytes: Int64 = 512 << 20
    public var openFiles: UInt64 = 1024
    public var coreFileBytes: UInt64 = 0

    public init() {}
}
