import Foundation
import TestSupport
import Testing

@testable import Sandbox

/// The user-namespace option: root inside is an unprivileged range on the host, and the rest of the sandbox
/// (mounts, /proc, /dev, /tmp, cgroup, seccomp, dropped capabilities) is set up as without it.
@Suite struct UserNamespaceTests {
    @Test func theProgramRunsAsAMappedIDOnTheHost() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec(
            """
            echo "uidmap=$(cat /proc/self/uid_map | tr -s ' ')"; echo "gidmap=$(cat /proc/self/gid_map | tr -s ' ')"; \
            echo "uid=$(id -u) gid=$(id -g)"; echo "host=$(hostname)"; \
            echo "caps=$(grep CapEff /proc/self/status | tr -d '\\t')"; \
            touch /tmp/x && echo "tmp=writable"; touch /rootfile 2>/dev/null && echo "root=writable" || echo "root=readonly"; \
            echo "devnull=$(echo hi > /dev/null && echo ok)"; \
            echo "ifaces=$(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"; \
            echo ready; exec sleep 60
            """)
        spec.userNamespace = .default
        let process = try await Sandbox.spawn(spec)
        let out = process.readStdout(until: "ready\n")
        // What the host sees: the sleeping program's real ids are the mapped ones, not 10001 and not root.
        let hostIDs = process.cgroup.processes().compactMap { pid -> String? in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            return status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map(String.init)
        }
        await process.stop()
        #expect(out.contains("uidmap= 0 100000 65536\n") || out.contains("uidmap=0 100000 65536\n"), "\(out)")
        #expect(out.contains("gidmap= 0 100000 65536\n") || out.contains("gidmap=0 100000 65536\n"), "\(out)")
        #expect(out.contains("uid=10001 gid=10001\n"), "\(out)")
        #expect(out.contains("host=faasbox\n"))
        #expect(out.contains("caps=CapEff:0000000000000000\n"), "\(out)")
        #expect(out.contains("tmp=writable\n"))
        #expect(out.contains("root=readonly\n"))
        #expect(out.contains("devnull=ok\n"))
        #expect(out.contains("ifaces=lo,\n"), "\(out)")
        #expect(hostIDs.contains { $0.split(separator: "\t").dropFirst().allSatisfy { $0 == "110001" } }, "\(hostIDs)")
        #expect(!hostIDs.contains { $0.contains("\t10001\t") }, "\(hostIDs)")
    }

    @Test func aUserOutsideTheMappedRangeIsRefusedBeforeAnythingStarts() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec("true")
        spec.userNamespace = SandboxSpec.UserNamespace(hostID: 100_000, count: 1000)
        await #expect {
            _ = try await Sandbox.spawn(spec)
        } throws: { error in
            guard case SandboxError.invalidSpec(let message) = error else { return false }
            return message.contains("10001:10001") && message.contains("1000 ids")
        }
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/\(spec.instanceID)"))
    }
}
