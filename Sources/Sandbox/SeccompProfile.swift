/// A seccomp profile as data: JSON users can read and edit. Rules name syscalls and an action; a rule may
/// compare arguments (all comparisons must hold). Names the kernel or libseccomp does not know are skipped.
public struct SeccompProfile: Codable, Sendable, Hashable {
    public enum Action: String, Codable, Sendable, Hashable { case allow, errno, kill, log }

    public struct ArgumentCheck: Codable, Sendable, Hashable {
        public enum Operator: String, Codable, Sendable, Hashable {
            case equal, notEqual, greaterThan, maskedEqual
        }
        public var index: UInt32
        public var op: Operator
        public var value: UInt64
        /// For `maskedEqual`: (argument & mask) == value.
        public var mask: UInt64?

        public init(index: UInt32, op: Operator, value: UInt64, mask: UInt64? = nil) {
            self.index = index
            self.op = op
            self.value = value
            self.mask = mask
        }
    }

    public struct Rule: Codable, Sendable, Hashable {
        public var names: [String]
        public var action: Action
        public var errno: Int32?
        public var args: [ArgumentCheck]?

        public init(names: [String], action: Action, errno: Int32? = nil, args: [ArgumentCheck]? = nil) {
            self.names = names
            self.action = action
            self.errno = errno
            self.args = args
        }
    }

    public var defaultAction: Action
    public var rules: [Rule]

    public init(defaultAction: Action, rules: [Rule]) {
        self.defaultAction = defaultAction
        self.rules = rules
    }

    /// The same profile with every non-allow action turned into `log`: nothing is denied, each would-be
    /// denial is logged by the kernel (audit / dmesg).
    public var loggingOnly: SeccompProfile {
        SeccompProfile(
            defaultAction: defaultAction == .allow ? .allow : .log,
            rules: rules.map { Rule(names: $0.names, action: $0.action == .allow ? .allow : .log, args: $0.args) })
    }
}

extension SeccompProfile {
    static let eperm: Int32 = 1
    static let enosys: Int32 = 38
    static let namespaceFlags: [UInt64] = [
        0x0002_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x0000_0080, 0x0200_0000,
    ]  // NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME, NEWCGROUP

    /// Modelled on Docker's default profile, as a deny list: what a function has no business calling
    /// returns EPERM; clone3 returns ENOSYS so that libc falls back to clone, whose namespace flags are
    /// checked; only the x86_64 ABI is allowed (i386 and x32 calls are refused by architecture).
    public static let `default` = SeccompProfile(
        defaultAction: .allow,
        rules: [
            Rule(
                names: [
                    // mounts and namespaces
                    "mount", "umount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
                    "fspick", "move_mount", "open_tree", "mount_setattr",
                    // kernel, modules, tracing
                    "bpf", "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                    "create_module", "get_kernel_syms", "query_module", "lookup_dcookie", "syslog", "ptrace",
                    "process_vm_readv", "process_vm_writev", "kcmp", "fanotify_init",
                    // keys
                    "keyctl", "add_key", "request_key",
                    // clocks and time
                    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime",
                    // machine
                    "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "nfsservctl", "vhangup", "iopl", "ioperm",
                    "uselib", "ustat", "sysfs", "_sysctl",
                    // file handles, userfaultfd, io_uring
                    "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter",
                    "io_uring_register",
                ], action: .errno, errno: eperm),
            Rule(names: ["clone3"], action: .errno, errno: enosys),
        ]
            + namespaceFlags.map { flag in
                Rule(
                    names: ["clone"], action: .errno, errno: eperm,
                    args: [ArgumentCheck(index: 0, op: .maskedEqual, value: flag, mask: flag)])
            } + [
                // personality: PER_LINUX, PER_LINUX32 and UNAME26 only, never ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC & co.
                // (libseccomp takes one comparison per argument, so the query form 0xffffffff is refused too.)
                Rule(
                    names: ["personality"], action: .errno, errno: eperm,
                    args: [
                        ArgumentCheck(index: 0, op: .greaterThan, value: 0x0002_0008)
                    ])
            ])
}
