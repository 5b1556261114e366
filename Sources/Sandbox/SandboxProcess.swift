import CSpawn
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A running sandboxed process: pid 1 of its namespaces, its cgroup, its output pipes. `stop()` is the one
/// teardown path: it kills every process of the instance and removes the cgroup; it is safe to call again.
public final class SandboxProcess: Sendable {
    public let pid: pid_t
    let pidfd: OwnedFileDescriptor
    public let cgroup: InstanceCgroup
    public let network: SandboxSpec.NetworkMode
    /// The program's stdout and stderr (read ends); the caller drains them.
    public let stdout: OwnedFileDescriptor
    public let stderr: OwnedFileDescriptor

    private enum State {
        case running(waiters: [CheckedContinuation<ExitStatus, Never>], watching: Bool)
        case exited(ExitStatus)
    }
    private let state = Mutex<State>(.running(waiters: [], watching: false))
    private let stopped = AtomicFlag()

    init(
        pid: pid_t, pidfd: OwnedFileDescriptor, cgroup: InstanceCgroup, network: SandboxSpec.NetworkMode,
        stdout: OwnedFileDescriptor, stderr: OwnedFileDescriptor
    ) {
        self.pid = pid
        self.pidfd = pidfd
        self.cgroup = cgroup
        self.network = network
        self.stdout = stdout
        self.stderr = stderr
    }

    /// The exit status, once pid 1 of the sandbox has exited (all of the instance dies with it).
    public func wait() async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let startWatching = state.withLock { state -> Bool in
                switch state {
                case .exited(let status):
                    continuation.resume(returning: status)
                    return false
                case .running(var waiters, let watching):
                    waiters.append(continuation)
                    state = .running(waiters: waiters, watching: true)
                    return !watching
                }
            }
            if startWatching {
                ProcessReaper.shared.watch(pidfd: pidfd.rawValue) { [self] status in self.finish(status) }
            }
        }
    }

    /// The exit status if the process has exited, without waiting.
    public var exitStatus: ExitStatus? {
        state.withLock { if case .exited(let s) = $0 { return s } else { return nil } }
    }

    private func finish(_ status: ExitStatus) {
        let waiters = state.withLock { state -> [CheckedContinuation<ExitStatus, Never>] in
            guard case .running(let waiters, _) = state else { return [] }
            state = .exited(status)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// What the instance uses now, from its cgroup.
    public func stats() -> SandboxStats {
        SandboxStats(
            memoryBytes: cgroup.memoryCurrent(), memoryPeakBytes: cgroup.memoryPeak(), processes: cgroup.processes().count,
            cpuTime: cgroup.cpuUsage(), oomKilled: cgroup.oomKilled())
    }

    /// Whether the program can be frozen (the spec asked for it and the host has a freezer).
    public var canFreeze: Bool { cgroup.freezer != nil }

    /// Freezes or thaws the program (every process but pid 1; see `SandboxSpec.freezable`). A freeze is
    /// asynchronous (each task stops as it next runs); a thaw wakes them at once. Throws where `canFreeze` is
    /// false or the cgroup is gone.
    public func setFrozen(_ frozen: Bool) throws(SandboxError) {
        guard let freezer = cgroup.freezer else { throw .cgroup("instance \(pid) has no freezer cgroup") }
        try freezer.setFrozen(frozen)
    }

    /// Whether every process of the program is frozen now.
    public var isFrozen: Bool { cgroup.freezer?.isFrozen ?? false }

    /// Whether pid 1 has begun to exit (PF_EXITING in /proc/PID/stat) without finishing: it waits for the rest
    /// of its pid namespace to die, which a v1-frozen process does only once thawed. (pid 1 killed from
    /// outside while the program is frozen; faasbox's own kills thaw first.)
    public var isExiting: Bool {
        let stat = FileSystem.readProcFile("/proc/\(pid)/stat")
        guard let end = stat.lastIndex(of: ")") else { return false }
        // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags …
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 6, let flags = UInt32(fields[6]) else { return false }
        return flags & 0x4 != 0  // PF_EXITING
    }

    /// Sends `signal` to pid 1, which forwards it to the program.
    public func signal(_ signal: Int32) {
        _ = fb_pidfd_send_signal(pidfd.rawValue, signal)
    }

    /// SIGKILL to pid 1 (the kernel then kills the whole pid namespace) and to every process of the cgroup.
    func killNow() {
        _ = fb_pidfd_send_signal(pidfd.rawValue, SIGKILL)
        cgroup.killAll()
    }

    /// Reaps pid 1 on this thread (for failures before anyone awaits `wait()`).
    func reapBlocking() -> ExitStatus {
        var code: CInt = 0
        var status: CInt = 0
        let rc = fb_waitid_pidfd(pidfd.rawValue, WEXITED, &code, &status)
        let result: ExitStatus = rc < 0 ? .signaled(SIGKILL) : .from(code: code, status: status)
        finish(result)
        return result
    }

    /// Ends the instance: SIGTERM, up to `grace` for it to exit, then SIGKILL of everything in it; then the
    /// cgroup is removed. Returns how pid 1 ended. Idempotent.
    @discardableResult
    public func stop(grace: Duration = .zero) async -> ExitStatus {
        if stopped.setOnce() {
            if exitStatus == nil && grace > .zero {
                try? cgroup.freezer?.setFrozen(false)  // a frozen program would not see its SIGTERM
                signal(SIGTERM)
                await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        _ = await self.wait(); return true
                    }
                    group.addTask {
                        try? await Task.sleep(for: grace); return false
                    }
                    // The group ends only when both tasks have: past the grace period the kill is what ends wait().
                    if await group.next() != true { await runBlocking { self.killNow() } }
                    group.cancelAll()
                }
            } else {
                await runBlocking { self.killNow() }
            }
            let status = await wait()
            // Freezing, killing and rmdir (retried while dying tasks leave) can take a while under memory
            // pressure: not on the cooperative pool, whose few threads every other instance needs.
            let cgroup = self.cgroup
            await runBlocking {
                cgroup.killAll()
                try? cgroup.remove()
            }
            return status
        }
        return await wait()
    }

    /// A TCP connection to 127.0.0.1:`port` inside the sandbox's network namespace (blocking socket).
    /// Throws ECONNREFUSED while nothing listens there.
    public func connect(port: UInt16) throws(SandboxError) -> OwnedFileDescriptor {
        let fd: CInt
        if network != .host {
            fd = fb_socket_in_netns(pidfd.rawValue, AF_INET, CInt(SOCK_STREAM.rawValue))
            if fd < 0 { throw .syscall(.negated("socket in the instance's network namespace", fd)) }
        } else {
            fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { throw .syscall(.current("socket")) }
        }
        let socket = OwnedFileDescriptor(.init(rawValue: fd))
        do { try LoopbackSocket.connect(socket, port: port) } catch { throw .syscall(error) }
        return socket
    }
}

/// A sandbox's resource use, read from its cgroup (nil where the host does not account it).
public struct SandboxStats: Sendable, Equatable {
    public let memoryBytes: Int64?
    public let memoryPeakBytes: Int64?
    public let processes: Int
    public let cpuTime: Duration?
    public let oomKilled: Bool
}
