import Foundation
import SystemSupport
import TestSupport
import Testing

@testable import Sandbox

@Suite struct TeardownTests {
    /// (device, inode) of every descriptor this process has open.
    static func openDescriptors() -> Set<[UInt64]> {
        var out = Set<[UInt64]>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            var st = stat()
            if stat("/proc/self/fd/\(name)", &st) == 0 { out.insert([UInt64(st.st_dev), UInt64(st.st_ino)]) }
        }
        return out
    }

    static func identity(_ fd: OwnedFileDescriptor) -> [UInt64] {
        var st = stat()
        fstat(fd.rawValue, &st)
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// When `pid` started (field 22 of /proc/PID/stat, in clock ticks since boot); nil when there is no such
    /// process. A pid and its start time name one process: pids are reused (pid_max is 32768 here, and other
    /// tests fork thousands of processes meanwhile).
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil  // after "pid (comm)", field 22 is the 20th
    }

    /// Start and stop 500 instances: afterwards none of their processes, cgroups, mounts or descriptors remain.
    @Test func fiveHundredInstancesLeaveNothingBehind() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var pids: [(pid: pid_t, started: UInt64?)] = []
        var cgroups: [String] = []
        var descriptors = Set<[UInt64]>()
        for i in 0..<500 {
            let process = try await Sandbox.spawn(rootfs.spec(i % 2 == 0 ? "sleep 100 & exec sleep 100" : "exit 0"))
            pids += process.cgroup.processes().map { ($0, Self.startTime($0)) }
            cgroups += process.cgroup.directories
            for fd in [process.pidfd, process.stdout, process.stderr] { descriptors.insert(Self.identity(fd)) }
            await process.stop()
        }
        #expect(pids.contains { $0.started != nil }, "the instances' processes were seen")
        for (pid, started) in pids where started != nil {
            #expect(Self.startTime(pid) != started, "pid \(pid) is alive")
        }
        for dir in Set(cgroups) { #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) remains") }
        #expect(!FileSystem.isMountPoint("\(rootfs.path)/proc"))
        #expect(!FileSystem.isMountPoint("\(rootfs.path)/tmp"))
        #expect(descriptors.count == 1500)
        #expect(descriptors.intersection(Self.openDescriptors()).isEmpty, "descriptors of stopped instances are still open")
    }
}
