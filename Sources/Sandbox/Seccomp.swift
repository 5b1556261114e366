import CSeccomp
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Compiles seccomp profiles to classic BPF with libseccomp, once per profile; the child only loads the bytes.
enum Seccomp {
    private static let cache = Mutex<[SeccompProfile: [UInt8]]>([:])

    /// The BPF program for `profile` (an array of struct sock_filter).
    static func program(for profile: SeccompProfile) throws(SandboxError) -> [UInt8] {
        if let cached = cache.withLock({ $0[profile] }) { return cached }
        let program = try compile(profile)
        cache.withLock { $0[profile] = program }
        return program
    }

    private static func action(_ action: SeccompProfile.Action, errno: Int32?) -> UInt32 {
        switch action {
        case .allow: return 0x7fff_0000  // SCMP_ACT_ALLOW
        case .errno: return 0x0005_0000 | UInt32(errno ?? 1) & 0xffff  // SCMP_ACT_ERRNO(n)
        case .kill: return 0x8000_0000  // SCMP_ACT_KILL_PROCESS
        case .log: return 0x7ffc_0000  // SCMP_ACT_LOG
        }
    }

    private static func compile(_ profile: SeccompProfile) throws(SandboxError) -> [UInt8] {
        guard let ctx = seccomp_init(action(profile.defaultAction, errno: 1)) else {
            throw .syscall(SystemCallError("seccomp_init", errno: .invalidArgument))
        }
        defer { seccomp_release(ctx) }
        // Calls from another ABI (i386, x32) are refused outright.
        let badArch = profile.defaultAction == .log ? action(.log, errno: nil) : action(.errno, errno: SeccompProfile.eperm)
        var rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, badArch)
        if rc < 0 { throw .syscall(.negated("seccomp_attr_set(ACT_BADARCH)", rc)) }
        // A binary tree of syscall numbers: each call of the function passes ~log2(n) comparisons of the
        // allowlist, not a linear scan of its ~300 entries.
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        if rc < 0 { throw .syscall(.negated("seccomp_attr_set(CTL_OPTIMIZE)", rc)) }
        for rule in profile.rules {
            let act = action(rule.action, errno: rule.errno)
            let checks = (rule.args ?? []).map { check -> scmp_arg_cmp in
                switch check.op {
                case .equal: return scmp_arg_cmp(arg: check.index, op: SCMP_CMP_EQ, datum_a: check.value, datum_b: 0)
                case .notEqual: return scmp_arg_cmp(arg: check.index, op: SCMP_CMP_NE, datum_a: check.value, datum_b: 0)
                case .greaterThan: return scmp_arg_cmp(arg: check.index, op: SCMP_CMP_GT, datum_a: check.value, datum_b: 0)
                case .maskedEqual:
                    return scmp_arg_cmp(arg: check.index, op: SCMP_CMP_MASKED_EQ, datum_a: check.mask ?? ~0, datum_b: check.value)
                }
            }
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                if number == __NR_SCMP_ERROR { continue }  // not a syscall of this architecture
                rc = checks.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, act, number, UInt32($0.count), $0.baseAddress) }
                if rc < 0 && rc != -EEXIST { throw .syscall(.negated("seccomp_rule_add(\(name))", rc)) }
            }
        }
        return try export(ctx)
    }

    private static func export(_ ctx: scmp_filter_ctx) throws(SandboxError) -> [UInt8] {
        let file: OwnedFileDescriptor
        do { file = try MemoryFile.create(name: "faasbox-seccomp") } catch { throw .syscall(error) }
        let rc = seccomp_export_bpf(ctx, file.rawValue)
        if rc < 0 { throw .syscall(.negated("seccomp_export_bpf", rc)) }
        lseek(file.rawValue, 0, SEEK_SET)
        do throws(SystemCallError) { return try file.readToEnd(limit: 1 << 20) } catch { throw .syscall(error) }
    }
}
