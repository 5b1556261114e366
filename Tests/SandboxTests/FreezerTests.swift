import Foundation
import TestSupport
import Testing

@testable import Sandbox

/// Freezing a sandbox's program (what faasbox does to idle instances): a frozen program gets no CPU, a thawed
/// one runs on; pid 1 stays out of the freeze, and every way of ending the sandbox ends a frozen one too.
@Suite struct FreezerTests {
    private func busy(_ rootfs: BusyboxRootfs, _ script: String = "while :; do :; done", userNamespace: Bool = false)
        async throws -> SandboxProcess
    {
        var spec = rootfs.spec(script)
        spec.freezable = true
        // The program joins its cgroup from inside the sandbox, through a file faasbox opened: so also as the
        // unprivileged host id a user namespace maps root to.
        if userNamespace { spec.userNamespace = .default }
        return try await Sandbox.spawn(spec)
    }

    /// Waits up to 5 s for the freeze to take hold (it is asynchronous).
    private func waitFrozen(_ process: SandboxProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !process.isFrozen && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test(arguments: [false, true]) func aFrozenProgramGetsNoCPUAndAThawedOneRunsOn(userNamespace: Bool) async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await busy(rootfs, userNamespace: userNamespace)
        #expect(process.canFreeze)
        try await Task.sleep(for: .milliseconds(200))
        try process.setFrozen(true)
        try await waitFrozen(process)
        #expect(process.isFrozen)
        let frozenAt = try #require(process.cgroup.cpuUsage())
        try await Task.sleep(for: .milliseconds(500))
        let stillFrozen = try #require(process.cgroup.cpuUsage())
        // pid 1 (faasbox-init) is outside the frozen cgroup: it still sleeps in wait(), not in the freezer.
        let initState = try String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8)
        try process.setFrozen(false)
        #expect(!process.isFrozen)
        try await Task.sleep(for: .milliseconds(500))
        let thawed = try #require(process.cgroup.cpuUsage())
        await process.stop()
        #expect(stillFrozen - frozenAt < .milliseconds(5), "frozen for 500 ms, it used \(stillFrozen - frozenAt)")
        #expect(thawed - stillFrozen > .milliseconds(50), "thawed for 500 ms, it used \(thawed - stillFrozen)")
        #expect(initState.split(separator: " ")[2] == "S", "pid 1 is asleep, not frozen: \(initState)")
    }

    /// A frozen program would never see SIGTERM: stopping thaws it first, so it finishes within its grace.
    @Test func stoppingAFrozenProgramThawsItForItsSIGTERM() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await busy(rootfs, "trap 'echo goodbye; exit 7' TERM; while :; do sleep 0.01; done")
        try await Task.sleep(for: .milliseconds(100))
        try process.setFrozen(true)
        try await waitFrozen(process)
        let begin = ContinuousClock.now
        let status = await process.stop(grace: .seconds(20))
        let took = ContinuousClock.now - begin
        #expect(status == .exited(7), "the program's own exit: \(status)")
        #expect(took < .seconds(5), "within its grace, not at its end: \(took)")
        #expect(process.cgroup.directories.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
    }

    /// Killed while frozen, every process dies and the cgroups (the program's below the instance's) go.
    @Test func killingAFrozenSandboxLeavesNothing() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await busy(rootfs, "for i in 1 2 3 4; do (while :; do :; done) & done; wait")
        let deadline = ContinuousClock.now + .seconds(5)
        while process.cgroup.processes().count < 6 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let pids = process.cgroup.processes()
        #expect(pids.count == 6, "init, sh and four loops: \(pids)")
        try process.setFrozen(true)
        try await waitFrozen(process)
        let freezer = try #require(process.cgroup.freezer)
        #expect(Set(freezer.processes).isSubset(of: Set(pids)) && freezer.processes.count == 5, "all but pid 1")
        let status = await process.stop()
        #expect(status == .signaled(SIGKILL))
        #expect(pids.allSatisfy { kill($0, 0) != 0 }, "every process is gone")
        #expect(!FileManager.default.fileExists(atPath: freezer.directory))
        #expect(process.cgroup.directories.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
    }

    /// Without `freezable` there is no program cgroup, and asking for a freeze is a clear error.
    @Test func aSandboxNotMadeFreezableSaysSo() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await Sandbox.spawn(rootfs.spec("sleep 60"))
        #expect(!process.canFreeze)
        #expect(throws: SandboxError.self) { try process.setFrozen(true) }
        await process.stop()
    }
}
