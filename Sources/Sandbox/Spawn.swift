import CSpawn
import Logging
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Starts sandboxed processes. The child's setup between clone and exec is C code (csandbox/spawn.c) that
/// runs the ordered steps prepared here; a failed step comes back over a pipe with its name and errno.
public enum Sandbox {
    /// Detects the host's cgroup setup (and, on cgroup v2, delegates controllers below our own cgroup) now,
    /// so that the first spawn does not pay for it. Returns what was found.
    @discardableResult
    public static func prepareHost() -> CgroupHost { CgroupHost.current }

    /// Compiles `profile` to BPF now (about 1 ms for the default allowlist), so that a spawn that needs it
    /// later only loads it: run beside other work of a cold start (the image pull). Compiled once per profile.
    public static func prepareSeccomp(_ profile: SeccompProfile?) throws(SandboxError) {
        if let profile { _ = try Seccomp.program(for: profile) }
    }

    /// Whether faasbox-init (pid 1 of every sandbox) was found, for `faasbox doctor`.
    public static var initBinaryStatus: String {
        switch InitBinary.descriptor {
        case .success: return "found"
        case .failure(let error): return "missing: \(error)"
        }
    }

    /// Creates the cgroup, prepares the rootfs, clones the child into its namespaces and waits until it has
    /// exec'd the program (or failed a setup step). Throws with the failing step; leaves nothing behind then.
    public static func spawn(_ spec: SandboxSpec, cgroups: CgroupHost = .current) async throws(SandboxError) -> SandboxProcess {
        try await runBlocking { () throws(SandboxError) -> SandboxProcess in try spawnBlocking(spec, cgroups: cgroups) }
    }

    static func spawnBlocking(_ spec: SandboxSpec, cgroups: CgroupHost) throws(SandboxError) -> SandboxProcess {
        guard let program = spec.arguments.first, !program.isEmpty else { throw .invalidSpec("no program to run") }
        if ([spec.user.uid, spec.user.gid] + spec.user.groups).contains(UInt32.max) {
            throw .invalidSpec("id 4294967295 means \"unchanged\" to setresuid/setresgid/setgroups; refused")
        }
        if let userns = spec.userNamespace {
            let ids = [spec.user.uid, spec.user.gid] + spec.user.groups
            if userns.count == 0 || ids.contains(where: { $0 >= userns.count })
                || UInt64(userns.hostID) + UInt64(userns.count) > UInt64(UInt32.max)
            {
                throw .invalidSpec(
                    "user \(spec.user.uid):\(spec.user.gid) is not inside the user namespace's \(userns.count) ids")
            }
            // The child sets up its mounts as the namespace's root, an unprivileged host id: it must be able
            // to reach the rootfs.
            var directory = spec.rootfs
            while let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
                directory = String(directory[..<slash])
                var st = stat()
                if stat(directory, &st) == 0 && st.st_mode & 0o001 == 0 && st.st_uid != userns.hostID {
                    throw .invalidSpec(
                        "\(directory) (mode \(String(st.st_mode & 0o777, radix: 8))) cannot be searched by host id "
                            + "\(userns.hostID), the user namespace's root: make it searchable (chmod o+x), or put the "
                            + "state dir elsewhere")
                }
            }
        }
        try Mounts.prepare(spec)
        let cgroup = try cgroups.createInstance(
            spec.instanceID, limits: spec.limits, freezer: spec.freezable && spec.initProcess)
        do {
            return try clone(spec, program: program, cgroup: cgroup)
        } catch {
            cgroup.killAll()
            try? cgroup.remove()
            throw error
        }
    }

    private static func clone(_ spec: SandboxSpec, program: String, cgroup: InstanceCgroup) throws(SandboxError) -> SandboxProcess
    {
        let arena = CArena()
        if spec.mounts.count > Int(FB_MAX_KEEP_FDS) - 3 { throw .invalidSpec("at most \(FB_MAX_KEEP_FDS - 3) mounts") }
        let sources = try Mounts.openSources(spec)
        // The lifeline's read end and the program's freezer files go last among the kept descriptors;
        // faasbox-init keeps them (Lifeline.swift, faasbox-init's main.c).
        let lifeline = spec.initProcess ? Lifeline.readEnd() : nil
        // The state file is the one the cgroup keeps open (the child gets a duplicate); the join file is opened.
        var freezerFiles: [CInt] = []
        var join: OwnedFileDescriptor?
        if spec.initProcess, let freezer = cgroup.freezer {
            do { join = try .open(freezer.joinFile, O_WRONLY | O_CLOEXEC) } catch { throw .syscall(error) }
            freezerFiles = [join!.rawValue, freezer.state.rawValue]
        }
        // Where the child has them once its descriptors are compacted (spawn.c, compact_fds).
        let cgroupFDs = min(cgroup.procsFiles.count, 8)
        let steps = Mounts.steps(for: spec, sources: sources.indices.map { CInt(8 + cgroupFDs + $0) })
        let filter = try spec.seccomp.map { profile throws(SandboxError) in try Seccomp.program(for: profile) }
        var procFDs: [CInt] = []
        defer { for fd in procFDs { close(fd) } }
        for file in cgroup.procsFiles {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            if fd < 0 { throw .syscall(.current("open", path: file)) }
            procFDs.append(fd)
        }
        let report: (read: OwnedFileDescriptor, write: OwnedFileDescriptor)
        let stdout: (read: OwnedFileDescriptor, write: OwnedFileDescriptor)
        let stderr: (read: OwnedFileDescriptor, write: OwnedFileDescriptor)
        do {
            report = try OwnedFileDescriptor.pipe()
            stdout = try OwnedFileDescriptor.pipe()
            stderr = try OwnedFileDescriptor.pipe()
        } catch { throw .syscall(error) }

        var config = fb_spawn_config()
        config.clone_flags =
            UInt(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)
            | (spec.network == .isolated ? UInt(CLONE_NEWNET) : 0)
            | (spec.userNamespace != nil ? UInt(CLONE_NEWUSER) : 0)
        config.new_cgroup_ns = 1
        config.cgroup_proc_fds = UnsafePointer(arena.array(procFDs))
        config.n_cgroup_proc_fds = CInt(procFDs.count)
        let initKept = (lifeline.map { [$0.rawValue] } ?? []) + freezerFiles
        let kept = sources.map(\.rawValue) + initKept
        config.keep_fds = UnsafePointer(arena.array(kept))
        config.n_keep_fds = CInt(kept.count)
        config.hostname = UnsafePointer(arena.string(spec.hostname))
        config.loopback_up = spec.network == .isolated ? 1 : 0
        config.netns_fd = -1
        if case .namespace(let netns) = spec.network { config.netns_fd = netns.descriptor.rawValue }
        config.steps = UnsafePointer(
            arena.array(
                steps.map { step in
                    fb_step(
                        op: CInt(step.op.rawValue), a: UnsafePointer(arena.string(step.source)),
                        b: UnsafePointer(arena.string(step.target)),
                        fstype: UnsafePointer(arena.string(step.fstype)), flags: step.flags,
                        data: UnsafePointer(arena.string(step.data)), mode: step.mode)
                }))
        config.n_steps = CInt(steps.count)
        let rlimits = [
            fb_rlimit(resource: CInt(RLIMIT_NOFILE.rawValue), soft: spec.limits.openFiles, hard: spec.limits.openFiles),
            fb_rlimit(resource: CInt(RLIMIT_CORE.rawValue), soft: spec.limits.coreFileBytes, hard: spec.limits.coreFileBytes),
        ]
        config.rlimits = UnsafePointer(arena.array(rlimits))
        config.n_rlimits = CInt(rlimits.count)
        config.stdin_fd = -1
        config.stdout_fd = stdout.write.rawValue
        config.stderr_fd = stderr.write.rawValue
        config.report_fd = report.write.rawValue
        config.uid = spec.user.uid
        config.gid = spec.user.gid
        config.groups = UnsafePointer(arena.array(spec.user.groups))
        config.n_groups = CInt(spec.user.groups.count)
        config.set_ids = 1
        config.cap_keep = spec.capabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
        config.drop_caps = 1
        config.no_new_privs = spec.noNewPrivileges ? 1 : 0
        config.cwd = UnsafePointer(arena.string(spec.workingDirectory))
        config.file = UnsafePointer(arena.string(program))
        let path =
            spec.environment.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? String(SandboxSpec.defaultEnvironment[0].dropFirst(5))
        config.search_path = UnsafePointer(arena.string(path))
        config.argv = UnsafePointer(arena.stringArray(spec.arguments))
        config.envp = UnsafePointer(arena.stringArray(spec.environment))
        config.init_fd = -1
        config.init_inherit_fd = -1
        if spec.initProcess {
            config.init_fd = try InitBinary.descriptor.get().rawValue
            // faasbox-init finds the report pipe at fd 3 in the child (see spawn.c), the lifeline after the mounts'.
            var initArguments = [InitBinary.name, "3"]
            var number = CInt(8 + cgroupFDs + sources.count)
            config.init_inherit_fd = initKept.isEmpty ? -1 : number
            config.n_init_inherit_fds = CInt(initKept.count)
            if lifeline != nil {
                initArguments += ["--lifeline", "\(number)"]
                number += 1
            }
            if !freezerFiles.isEmpty { initArguments += ["--freezer", "\(number)", "\(number + 1)"] }
            config.init_argv = UnsafePointer(arena.stringArray(initArguments + ["--"] + spec.arguments))
        }
        if let filter {
            config.seccomp_filter = UnsafeRawPointer(arena.array(filter))
            config.seccomp_len = UInt16(filter.count / 8)  // sizeof(struct sock_filter)
        }

        var sync: (read: OwnedFileDescriptor, write: OwnedFileDescriptor)?
        if spec.userNamespace != nil {
            do { sync = try OwnedFileDescriptor.pipe() } catch { throw .syscall(error) }
        }
        config.userns_sync_read_fd = sync?.read.rawValue ?? -1
        config.userns_sync_write_fd = sync?.write.rawValue ?? -1

        var pidfd: CInt = -1
        let pid = withExtendedLifetime(arena) { fb_spawn(&config, &pidfd) }
        if pid < 0 { throw .syscall(.negated("clone", pid)) }
        report.write.close()
        stdout.write.close()
        stderr.write.close()
        let process = SandboxProcess(
            pid: pid, pidfd: OwnedFileDescriptor(.init(rawValue: pidfd)), cgroup: cgroup,
            network: spec.network, stdout: stdout.read, stderr: stderr.read)
        if let userns = spec.userNamespace, let sync {
            sync.read.close()
            do {
                try writeIDMaps(pid: pid, userns)
            } catch {
                process.killNow()
                _ = process.reapBlocking()
                throw error
            }
            let go: UInt8 = 1
            _ = withUnsafeBytes(of: go) { Glibc.write(sync.write.rawValue, $0.baseAddress, 1) }
            sync.write.close()
        }
        defer { withExtendedLifetime((sources, lifeline, join)) {} }
        switch readReport(report.read, timeout: 10_000) {
        case .execed:
            return process
        case .failed(let failure):
            process.killNow()
            _ = process.reapBlocking()
            throw .setupFailed(step: stageName(failure.stage, steps: steps, program: program), errno: failure.err)
        case .timedOut:
            process.killNow()
            _ = process.reapBlocking()
            throw .setupFailed(step: "sandbox setup (no exec within 10 s)", errno: ETIMEDOUT)
        }
    }

    /// Maps the child's user namespace (the parent side of the handshake in spawn.c). Root on the host may map
    /// any range, so setgroups stays allowed and the program can drop to its own groups.
    private static func writeIDMaps(pid: pid_t, _ userns: SandboxSpec.UserNamespace) throws(SandboxError) {
        for file in ["uid_map", "gid_map"] { try CgroupFile.write("/proc/\(pid)/\(file)", userns.mapLine) }
    }

    private enum ChildReport {
        /// The pipe closed empty: the program was exec'd.
        case execed
        case failed(fb_report)
        case timedOut
    }

    private static func readReport(_ fd: OwnedFileDescriptor, timeout milliseconds: Int32) -> ChildReport {
        var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        let ready = Syscall.retrying { poll(&pfd, 1, milliseconds) }
        if ready == 0 { return .timedOut }
        var report = fb_report()
        let n = withUnsafeMutableBytes(of: &report) { buffer in
            Syscall.retrying { read(fd.rawValue, buffer.baseAddress, buffer.count) }
        }
        return n == MemoryLayout<fb_report>.size ? .failed(report) : .execed
    }

    static func stageName(_ stage: Int32, steps: [MountStep], program: String) -> String {
        if stage >= FB_STAGE_STEPS.rawValue {
            let index = Int(stage - Int32(FB_STAGE_STEPS.rawValue))
            return index < steps.count ? steps[index].name : "step \(index)"
        }
        switch fb_stage(rawValue: UInt32(stage)) {
        case FB_STAGE_CGROUP: return "joining the cgroup"
        case FB_STAGE_CGROUP_NS: return "unshare(CLONE_NEWCGROUP)"
        case FB_STAGE_HOSTNAME: return "sethostname"
        case FB_STAGE_MOUNT_PRIVATE: return "making mounts private"
        case FB_STAGE_LOOPBACK: return "bringing up lo"
        case FB_STAGE_RLIMIT: return "setrlimit"
        case FB_STAGE_STDIO: return "setting up stdio"
        case FB_STAGE_SECUREBITS: return "locking securebits"
        case FB_STAGE_BOUNDING: return "dropping the capability bounding set"
        case FB_STAGE_SETGROUPS: return "setgroups"
        case FB_STAGE_SETGID: return "setresgid"
        case FB_STAGE_SETUID: return "setresuid"
        case FB_STAGE_CAPSET: return "capset"
        case FB_STAGE_AMBIENT: return "setting ambient capabilities"
        case FB_STAGE_NO_NEW_PRIVS: return "prctl(PR_SET_NO_NEW_PRIVS)"
        case FB_STAGE_CHDIR: return "chdir to the working directory"
        case FB_STAGE_SECCOMP: return "loading the seccomp filter"
        case FB_STAGE_FORK: return "starting the program from \(InitBinary.name)"
        case FB_STAGE_EXEC: return "execve \(program)"
        case FB_STAGE_INIT: return "execveat \(InitBinary.name)"
        case FB_STAGE_USERNS: return "waiting for the user namespace's id maps"
        case FB_STAGE_FREEZER: return "joining the program's freezer cgroup"
        default: return "stage \(stage)"
        }
    }
}
