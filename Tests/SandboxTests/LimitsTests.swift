import Foundation
import TestSupport
import Testing

@testable import Sandbox

/// Limits enforced by the kernel, observed from inside and from the cgroup.
@Suite struct LimitsTests {
    @Test func aMemoryBombIsOOMKilledAndTheCgroupSaysSo() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        // sort keeps its whole input (one 200 MB line) in memory; the limit is 32 MB.
        var spec = rootfs.spec("head -c 200000000 /dev/zero | tr '\\\\0' a | sort > /dev/null; echo sort=$?")
        spec.limits.memoryBytes = 32 << 20
        let process = try await Sandbox.spawn(spec)
        _ = await process.wait()
        let out = try process.readStdout()
        let oom = process.cgroup.oomKilled()
        let peak = process.cgroup.memoryPeak() ?? 0
        await process.stop()
        #expect(out.contains("sort=137\n"), "sort is SIGKILLed: \(out)")
        #expect(oom)
        #expect(peak > 16 << 20 && peak <= 33 << 20, "peak \(peak)")
    }

    /// The peak-memory file stays open (one pread per invocation): each read is the kernel's value at the time.
    @Test func thePeakMemoryIsReadAnewEachTime() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        // The sort waits for /go, which the test makes (in the rootfs directory the sandbox sees) once it has
        // read the peak before it.
        var spec = rootfs.spec(
            "until [ -e /go ]; do sleep 0.05; done; head -c 40000000 /dev/zero | tr '\\0' a | sort > /dev/null; sleep 60")
        spec.limits.memoryBytes = 128 << 20
        let process = try await Sandbox.spawn(spec)
        let before = process.cgroup.memoryPeak() ?? -1
        #expect(FileManager.default.createFile(atPath: "\(rootfs.path)/go", contents: nil))
        var after: Int64 = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while after <= 30 << 20, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            after = process.cgroup.memoryPeak() ?? 0
        }
        // v1: the memory controller's directory; v2: the one directory.
        let memory = process.cgroup.directories.first { $0.contains("/memory/") } ?? process.cgroup.directories[0]
        let fresh = CgroupFile.int(memory + (memory.contains("/memory/") ? "/memory.max_usage_in_bytes" : "/memory.peak")) ?? 0
        let again = process.cgroup.memoryPeak() ?? 0
        await process.stop()
        #expect(before >= 0 && before < 20 << 20, "before the sort: \(before)")
        #expect(after > 30 << 20, "after the sort: \(after)")
        // The peak may still be growing: the kept descriptor and a new open read the same, in time order.
        #expect(after <= fresh && fresh <= again, "\(after) ≤ \(fresh) ≤ \(again)")
    }

    /// CPU weights hold under contention: two sandboxes of 4 busy loops each, one with a low weight and one with
    /// a high one, on the same core; the heavy one gets most of it (equal weights, or no cgroup: about half).
    @Test func underContentionTheCPUGoesByWeight() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        func busy(_ loops: Int, weight: Int) async throws -> SandboxProcess {
            // All on CPU 0 (taskset), both sandboxes: the weights then decide on one runqueue, whatever the load
            // balancer does with the rest of a busy test run.
            let loops = String(repeating: "(while :; do :; done) & ", count: loops) + "sleep 30"
            var spec = rootfs.spec("exec /bin/busybox taskset 1 /bin/sh -c '\(loops)'")
            spec.limits.cpuWeight = weight
            return try await Sandbox.spawn(spec)
        }
        let light = try await busy(4, weight: 1)
        let heavy = try await busy(4, weight: 100)
        try await Task.sleep(for: .milliseconds(300))
        let (light0, heavy0) = (light.cgroup.cpuUsage() ?? .zero, heavy.cgroup.cpuUsage() ?? .zero)
        try await Task.sleep(for: .seconds(2))
        let (light1, heavy1) = (light.cgroup.cpuUsage() ?? .zero, heavy.cgroup.cpuUsage() ?? .zero)
        let shares = (light.cgroup.directories + heavy.cgroup.directories).compactMap {
            (try? String(contentsOfFile: "\($0)/cpu.shares", encoding: .utf8)).map {
                "\($0)".trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        await light.stop()
        await heavy.stop()
        let (l, h) = (light1 - light0, heavy1 - heavy0)
        #expect(h > .zero, "the cgroup accounts CPU")
        let share = h / (l + h)
        #expect(share > 0.75, "the heavy sandbox's share: \(share) (light \(l), heavy \(h), shares \(shares))")
    }

    @Test func thePidsLimitStopsAForkBomb() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        // The subshell dies at its first failed fork; the sleeps it started stay, and the outer shell goes on.
        var spec = rootfs.spec("(i=0; while [ $i -lt 60 ]; do sleep 60 & i=$((i+1)); done) 2>&1; echo loop-ended; sleep 60")
        spec.limits.pids = 20
        let process = try await Sandbox.spawn(spec)
        // Wait (up to 20 s, for slow machines) until the loop has run into the limit.
        var count = 0
        for _ in 0..<2000 {
            count = process.cgroup.processes().count
            if count >= 19 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(100))
        count = process.cgroup.processes().count
        await process.stop()
        let out = try process.readStdout()
        #expect(count <= 20 && count >= 15, "\(count) processes")
        #expect(out.contains("can't fork"), "\(out)")
        #expect(out.contains("loop-ended"))
    }

    @Test func tmpIsFullAtItsSizeWithENOSPC() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec("dd if=/dev/zero of=/tmp/fill bs=1024 count=4096 2>&1; echo dd=$?; ls -l /tmp/fill")
        spec.limits.tmpBytes = 1 << 20
        let process = try await Sandbox.spawn(spec)
        _ = await process.wait()
        let out = try process.readStdout()
        await process.stop()
        #expect(out.contains("No space left on device"), "\(out)")
        #expect(out.contains("dd=1\n"))
        #expect(out.contains(" 1048576 "), "the file stops at 1 MiB: \(out)")
    }

    @Test func openFilesAreLimited() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await Sandbox.spawn(rootfs.spec("ulimit -n; ulimit -c"))
        _ = await process.wait()
        let out = try process.readStdout()
        await process.stop()
        #expect(out == "1024\n0\n")
    }
}
