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
    /// denial is logged by the kernel (audit / dmesg). Rules that would then do what the default does are
    /// dropped (the kernel's filter cannot hold a rule whose action is the default's).
    public var loggingOnly: SeccompProfile {
        let fallback: Action = defaultAction == .allow ? .allow : .log
        return SeccompProfile(
            defaultAction: fallback,
            rules: rules.map { Rule(names: $0.names, action: $0.action == .allow ? .allow : .log, args: $0.args) }
                .filter { $0.action != fallback })
    }
}

extension SeccompProfile {
    static let eperm: Int32 = 1
    static let enosys: Int32 = 38
    static let namespaceFlags: [UInt64] = [
        0x0002_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x0000_0080, 0x0200_0000,
    ]  // NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME, NEWCGROUP

    /// Every system call a normal program makes, as Docker's default profile allows them (x86_64), less those
    /// that reach outside the sandbox or the kernel's rarely used corners.
    static let allowed: [String] = [
        // files and descriptors
        "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat", "dup", "dup2", "dup3",
        "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown",
        "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat",
        "fstatfs", "fsync", "ftruncate", "futimesat", "getcwd", "getdents", "getdents64", "getxattr", "getxattrat",
        "lchown", "lgetxattr", "link", "linkat", "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lseek",
        "lsetxattr", "lstat", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pipe",
        "pipe2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
        "readlinkat", "readv", "removexattr", "removexattrat", "rename", "renameat", "renameat2", "rmdir", "sendfile",
        "setxattr", "setxattrat", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
        "syncfs", "tee", "truncate", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vmsplice", "write",
        "writev", "ioctl", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "fanotify_mark",
        "memfd_create", "cachestat",
        // memory
        "brk", "madvise", "membarrier", "mincore", "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mremap", "mseal",
        "msync", "munlock", "munlockall", "munmap", "remap_file_pages", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "get_mempolicy", "mbind", "set_mempolicy", "map_shadow_stack",
        // processes, threads, signals
        "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "futex",
        "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "get_robust_list", "set_robust_list", "getpid",
        "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid", "getpriority", "setpriority",
        "getrlimit", "setrlimit", "prlimit64", "getrusage", "kill", "tgkill", "tkill", "pause", "pidfd_open",
        "pidfd_send_signal", "prctl", "rseq", "restart_syscall", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack",
        "signalfd", "signalfd4", "set_tid_address", "get_thread_area", "set_thread_area", "wait4", "waitid",
        "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_setscheduler",
        "sched_rr_get_interval", "sched_yield", "ioprio_get", "ioprio_set", "process_mrelease", "seccomp",
        "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
        // ids (inside the sandbox's own, unprivileged)
        "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid", "setuid", "setgid", "setreuid",
        "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
        // time
        "clock_getres", "clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep", "time", "times", "alarm",
        "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
        "timerfd_create", "timerfd_gettime", "timerfd_settime",
        // waiting and events
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2",
        "poll", "ppoll", "pselect6", "select", "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
        "io_pgetevents",
        // sockets (socket itself: by family, below)
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "setsockopt", "listen",
        "recvfrom", "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto", "shutdown", "socketpair",
        // System V and POSIX IPC (the sandbox's own IPC namespace)
        "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "shmat", "shmctl", "shmdt",
        "shmget", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
        // the machine, read only
        "getcpu", "getrandom", "sysinfo", "uname",
    ]

    /// Socket families a function may open: unix, IPv4, IPv6, netlink (to read its interfaces). Not vsock, which
    /// ignores network namespaces (a VM guest's host is one connect away), nor packet, AF_ALG and the rest.
    static let socketFamilies: [UInt64] = [1, 2, 10, 16]  // AF_UNIX, AF_INET, AF_INET6, AF_NETLINK

    /// personality(2) values allowed: PER_LINUX, PER_LINUX32, UNAME26 with them, and the query 0xffffffff.
    static let personalities: [UInt64] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]

    /// An allow list modelled on Docker's default profile: anything not listed fails with EPERM; `socket` only for
    /// the families above; `clone` only without namespace flags, and `clone3` with ENOSYS so that libc falls back
    /// to `clone`, whose flags can be checked; `personality` only to the values above. Mounts, namespaces,
    /// modules, BPF, perf, ptrace, keys, clocks, swap, reboot, io_uring, userfaultfd, file handles are left out.
    /// Only the x86_64 ABI is allowed (i386 and x32 calls are refused by architecture).
    public static let `default` = SeccompProfile(
        defaultAction: .errno,
        rules: [Rule(names: allowed, action: .allow), Rule(names: ["clone3"], action: .errno, errno: enosys)]
            + socketFamilies.map { family in
                Rule(names: ["socket"], action: .allow, args: [ArgumentCheck(index: 0, op: .equal, value: family)])
            }
            + [
                Rule(
                    names: ["clone"], action: .allow,
                    args: [
                        ArgumentCheck(index: 0, op: .maskedEqual, value: 0, mask: namespaceFlags.reduce(0, |))
                    ])
            ]
            + personalities.map { value in
                Rule(names: ["personality"], action: .allow, args: [ArgumentCheck(index: 0, op: .equal, value: value)])
            })
}
