import Bootstrap
import Foundation
import ImageRuntime
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `faasbox doctor --isolation`: runs the isolation probe (images/isolation-probe) in a sandbox made with the
/// default spec and collects one verdict per property, plus what the host sees of it (the OOM report).
public enum IsolationCheck {
    public struct Verdict: Sendable, CustomStringConvertible {
        public let held: Bool
        public let property: String
        public let detail: String
        public var description: String { "\(held ? "HELD  " : "BROKEN") \(property): \(detail)" }
    }

    /// Runs the probe image; throws only when it cannot be run at all.
    public static func run(
        probeImage: String, store: ImageStore, userNamespace: FunctionConfig.UserNamespace? = nil, asRoot: Bool = false
    ) async throws -> [Verdict] {
        let image = try await store.pull(probeImage)
        let id = "isolation-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let marker = "\(store.root)/.isolation-marker-\(id)"
        _ = FileManager.default.createFile(atPath: marker, contents: Data("host only".utf8))
        defer { unlink(marker) }
        // A listener on the host's 127.0.0.1 (a free port) that the sandbox must not reach.
        let (listener, port) = try LoopbackSocket.listen(backlog: 4)
        defer { listener.close() }
        var options = SandboxRun.Options()
        options.environment = ["PATH=/bin", "PROBE_MARKER=\(marker)", "PROBE_PORT=\(port)"]
        // /tmp is a tmpfs whose pages count against the instance's memory: give the probe room to fill the
        // 512 MB of /tmp before its memory bomb meets the limit.
        options.memoryMB = 768
        options.userNamespace = userNamespace
        options.asRoot = asRoot
        options.captureStdout = true
        let run = try await SandboxRun.run(
            image.config.config?.entrypoint ?? ["/probe"], image: image, store: store, name: id, options: options)
        var verdicts = String(decoding: run.stdout, as: UTF8.self).split(separator: "\n").compactMap(parse)
        verdicts.append(
            Verdict(
                held: run.oomKilled, property: "memory bomb reported as OOM by the cgroup",
                detail: run.oomKilled ? "oom_kill counted" : "no OOM kill recorded"))
        return verdicts
    }

    static func parse(_ line: Substring) -> Verdict? {
        guard let space = line.firstIndex(of: " "), let colon = line.range(of: ": ") else { return nil }
        let word = line[..<space]
        guard word == "HELD" || word == "BROKEN" else { return nil }
        return Verdict(
            held: word == "HELD", property: String(line[line.index(after: space)..<colon.lowerBound]),
            detail: String(line[colon.upperBound...]))
    }
}
