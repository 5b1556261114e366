import Foundation
import TestSupport
import Testing

@testable import Sandbox

/// These start real sandboxes: they need root, namespaces and cgroups, and assert what the kernel did.
@Suite struct SandboxTests {
    @Test func theProgramRunsIsolatedAsANonRootUser() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let script = """
            echo "pid=$$"; echo "uid=$(id -u)"; echo "host=$(hostname)"; \
            echo "ifaces=$(ls /sys/class/net 2>/dev/null | tr '\\n' ' ')$(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"; \
            touch /rootfile 2>/dev/null && echo "root=writable" || echo "root=readonly"; \
            touch /tmp/x && echo "tmp=writable"; \
            echo "maxpid=$(ls /proc | grep '^[0-9]' | sort -n | tail -1)"; \
            [ -e /proc/\(getpid())/status ] && echo "hostpid=visible" || echo "hostpid=hidden"; \
            echo "env=$(cat /proc/2/environ | tr '\\0' ' ')"; \
            cat /proc/1/environ >/dev/null 2>&1 && echo "initenv=readable" || echo "initenv=hidden"
            """
        let process = try await Sandbox.spawn(rootfs.spec(script))
        let status = await process.wait()
        let out = try process.readStdout()
        await process.stop()
        #expect(status == .exited(0))
        #expect(out.contains("pid=2\n"), "the program is pid 2 under the tiny init: \(out)")
        #expect(out.contains("uid=10001\n"))
        #expect(out.contains("host=faasbox\n"))
        #expect(out.contains("ifaces=lo,\n"), "only loopback: \(out)")
        #expect(out.contains("root=readonly\n"))
        #expect(out.contains("tmp=writable\n"))
        let maxPID = out.split(separator: "\n").first { $0.hasPrefix("maxpid=") }.flatMap { Int($0.dropFirst(7)) }
        #expect((maxPID ?? 1000) < 100, "pids are the sandbox's own: \(out)")
        #expect(out.contains("hostpid=hidden\n"), "the host's processes are invisible: \(out)")
        #expect(out.contains("initenv=hidden\n"), "pid 1 (a copy of faasbox) must not show the host's environment")
        #expect(out.contains("env=PATH=/bin \n"), "no host variable leaks: \(out)")
    }

    @Test func theMemoryLimitIsWrittenToTheInstanceCgroup() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await Sandbox.spawn(rootfs.spec("sleep 60"))
        let files = process.cgroup.directories
        let limit = files.compactMap { dir -> Int64? in
            for name in ["memory.limit_in_bytes", "memory.max"] {
                if let text = try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8) {
                    return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
                }
            }
            return nil
        }.first
        #expect(limit == 64 << 20)
        #expect(process.cgroup.processes().count == 2)  // init and sleep
        await process.stop()
        for dir in files { #expect(!FileManager.default.fileExists(atPath: dir)) }
    }

    @Test func stopKillsDoubleForkedDaemonsAndRemovesTheCgroup() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await Sandbox.spawn(rootfs.spec("(sleep 1000 &) ; (sleep 1001 &) ; sleep 1002"))
        try await Task.sleep(for: .milliseconds(100))
        let pids = process.cgroup.processes()
        #expect(pids.count >= 4, "init, sh/sleep and two daemons: \(pids)")
        let dirs = process.cgroup.directories
        let status = await process.stop(grace: .milliseconds(50))
        #expect(status.programSignal != nil || status == .signaled(SIGKILL))
        for pid in pids { #expect(kill(pid, 0) != 0, "pid \(pid) survived") }
        for dir in dirs { #expect(!FileManager.default.fileExists(atPath: dir)) }
    }

    @Test func aMissingProgramFailsAtExecveAndLeavesNothing() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec("")
        spec.arguments = ["/no/such/program"]
        await #expect {
            _ = try await Sandbox.spawn(spec)
        } throws: { error in
            guard case SandboxError.setupFailed(let step, let errno) = error else { return false }
            return step == "execve /no/such/program" && errno == ENOENT
        }
        let leftovers = CgroupHost.current.description.isEmpty ? [] : Self.instanceCgroups(named: spec.instanceID)
        #expect(leftovers.isEmpty)
    }

    @Test func theFunctionsPortIsReachableOnlyThroughItsNamespace() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let process = try await Sandbox.spawn(rootfs.spec("nc -ll -p 9000 -e /bin/echo hi"))
        defer { Task { await process.stop() } }
        var connected = false
        for _ in 0..<200 where !connected {
            if (try? process.connect(port: 9000)) != nil { connected = true } else { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(connected)
        // The host's loopback has no listener there (the namespace is the function's own).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(9000).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(rc != 0)
        await process.stop()
    }

    @Test func membershipAndMountinfoParse() {
        let membership = CgroupHost.parseMembership("4:memory:/a/b\n8:pids:/\n0::/user.slice\n1:cpu,cpuacct:/c\n")
        #expect(membership["memory"] == "/a/b")
        #expect(membership[""] == "/user.slice")
        #expect(membership["cpuacct"] == "/c")
        let mounts = CgroupHost.parseMounts(
            "35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory\n"
                + "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n")
        #expect(mounts.count == 2)
        #expect(mounts[0].controllers.contains("memory") && !mounts[0].v2)
        #expect(mounts[1].v2 && mounts[1].hostPath(for: "/x") == "/sys/fs/cgroup/unified/x")
    }

    static func instanceCgroups(named id: String) -> [String] {
        switch CgroupHost.current {
        case .v1(let bases): return bases.values.map { "\($0)/\(id)" }.filter { FileManager.default.fileExists(atPath: $0) }
        case .v2(let base, _): return ["\(base)/\(id)"].filter { FileManager.default.fileExists(atPath: $0) }
        case .unavailable: return []
        }
    }
}

@Suite struct SandboxSpecMountTests {
    @Test func hostPathsAreBoundReadOnlyOrWritableAsAsked() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let shared = TestPaths.temporaryDirectory("mount-src")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        try Data("from the host\n".utf8).write(to: URL(fileURLWithPath: "\(shared)/note"))
        let scratch = TestPaths.temporaryDirectory("mount-rw")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: scratch)
        var spec = rootfs.spec(
            """
            cat /var/user/code/note; touch /var/user/code/x 2>/dev/null && echo ro=broken || echo ro=held; \
            echo written > /data/out && echo rw=ok; cat /etc/single
            """)
        spec.mounts = [
            .init(source: shared, target: "/var/user/code"),
            .init(source: scratch, target: "/data", readOnly: false),
            .init(source: "\(shared)/note", target: "/etc/single"),
        ]
        let process = try await Sandbox.spawn(spec)
        _ = await process.wait()
        let out = try process.readStdout()
        let stats = process.stats()
        await process.stop()
        #expect(out == "from the host\nro=held\nrw=ok\nfrom the host\n", "\(out)")
        #expect(try String(contentsOfFile: "\(scratch)/out", encoding: .utf8) == "written\n")
        #expect(stats.memoryPeakBytes ?? 0 > 0)
        #expect(stats.cpuTime.map { $0 > .zero } ?? true)
    }

    @Test func aMountTargetThroughAnImagesSymlinkIsRefused() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        try FileManager.default.createSymbolicLink(atPath: "\(rootfs.path)/escape", withDestinationPath: "/root")
        var spec = rootfs.spec("true")
        spec.mounts = [.init(source: "/etc/hostname", target: "/escape/planted")]
        await #expect(throws: SandboxError.self) { _ = try await Sandbox.spawn(spec) }
        #expect(!FileManager.default.fileExists(atPath: "/root/planted"))
    }
}
