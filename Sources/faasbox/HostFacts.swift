import Bootstrap
import Foundation
import ImageRuntime
import SystemSupport

/// What a reader of a benchmark needs to know about the machine.
struct HostFacts {
    let pairs: [(String, String)]

    /// The running kernel's release (uname -r).
    static var kernelRelease: String {
        var uts = utsname()
        uname(&uts)
        return withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static var current: HostFacts {
        let kernel = kernelRelease
        let model =
            FileSystem.readProcFile("/proc/cpuinfo").split(separator: "\n")
            .first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let memory = ProcessInfo.processInfo.physicalMemory >> 20
        return HostFacts(pairs: [
            ("kernel", kernel), ("cpu", model), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ("memory", "\(memory) MiB"), ("cgroups", FunctionHost.prepare()),
            ("rootfs", RootfsMode.current == .overlay ? "overlay" : "hard-link farm"),
        ])
    }
}
