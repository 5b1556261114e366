import Foundation
import Sandbox
import TestSupport

/// A minimal rootfs on disk (busybox-static), and a way to run a shell script in a sandbox over it.
struct BusyboxRootfs {
    let path: String

    init() throws {
        path = TestPaths.temporaryDirectory("sandbox-rootfs")
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(path)/bin", withIntermediateDirectories: true)
        try fm.copyItem(atPath: "/bin/busybox", toPath: "\(path)/bin/busybox")
        for applet in [
            "sh", "cat", "ls", "id", "hostname", "sleep", "touch", "echo", "nc", "dd", "mount", "rm", "head", "tr", "sort",
            "grep", "unshare", "linux32", "tail", "wc", "true",
        ] {
            try fm.createSymbolicLink(atPath: "\(path)/bin/\(applet)", withDestinationPath: "busybox")
        }
    }

    func spec(_ script: String, id: String = "t-" + UUID().uuidString.prefix(8).lowercased()) -> SandboxSpec {
        var spec = SandboxSpec(rootfs: path, arguments: ["/bin/sh", "-c", script], environment: ["PATH=/bin"], instanceID: id)
        spec.limits.memoryBytes = 64 << 20
        return spec
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

extension SandboxProcess {
    /// Everything the program wrote to stdout, read until EOF (the instance has exited).
    func readStdout() throws -> String {
        String(decoding: try stdout.readToEnd(), as: UTF8.self)
    }

    /// What the program wrote to stdout up to and including `marker` (or EOF), while it keeps running.
    func readStdout(until marker: String) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: bytes, as: UTF8.self).contains(marker) {
            let n = buffer.withUnsafeMutableBytes { read(stdout.rawValue, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
