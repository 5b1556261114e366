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

    /// Start and stop 500 instances: afterwards none of their processes, cgroups, mounts or descriptors remain.
    @Test func fiveHundredInstancesLeaveNothingBehind() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var pids: [pid_t] = []
        var cgroups: [String] = []
        var descriptors = Set<[UInt64]>()
        for i in 0..<500 {
            let process = try await Sandbox.spawn(rootfs.spec(i % 2 == 0 ? "sleep 100 & exec sleep 100" : "exit 0"))
            pids += process.cgroup.processes()
            cgroups += process.cgroup.directories
            for fd in [process.pidfd, process.stdout, process.stderr] { descriptors.insert(Self.identity(fd)) }
            await process.stop()
        }
        for pid in pids { #expect(kill(pid, 0) != 0, "pid \(pid) is alive") }
        for dir in Set(cgroups) { #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) remains") }
        #expect(!FileSystem.isMountPoint("\(rootfs.path)/proc"))
        #expect(!FileSystem.isMountPoint("\(rootfs.path)/tmp"))
        #expect(descriptors.count == 1500)
        #expect(descriptors.intersection(Self.openDescriptors()).isEmpty, "descriptors of stopped instances are still open")
    }
}
