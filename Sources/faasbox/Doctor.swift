import ArgumentParser
import Bootstrap
import Diagnostics
import Foundation
import ImageRuntime
import SystemSupport

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Report what this host supports and what faasbox will use.")

    @Flag(help: "Run the isolation probe in a default sandbox and print HELD or BROKEN per property.")
    var isolation = false

    @Flag(help: "With --isolation: run the probe in a user namespace of its own (ids 0-65535 → host 100000-165535).")
    var userns = false

    @Flag(help: "With --isolation: run the probe as root in the image (uid 0), as a function whose image's User is root.")
    var asRoot = false

    @Option(help: "The isolation probe image (scripts/build-images builds it).")
    var probeImage = "build/images/isolation-probe.tar"

    @OptionGroup var state: StateOptions

    func run() async throws {
        if isolation { return try await runIsolation() }
        let filesystems = FileSystem.readProcFile("/proc/filesystems")
        let userNamespaces =
            (try? String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        line(
            "privileges",
            geteuid() == 0 ? "root" : "not root: run, serve, pull and bench need root (namespaces, overlay mounts, cgroups)")
        line("kernel", HostFacts.kernelRelease)
        line("cores", "\(ProcessInfo.processInfo.activeProcessorCount)")
        line("cgroups", FunctionHost.prepare())
        line("overlayfs", filesystems.contains("\toverlay\n") ? "yes" : "no")
        line(
            "instance rootfs",
            RootfsMode.current == .overlay
                ? "overlay over the stored layers (nothing copied)"
                : "hard-link farm of the stored layers (no overlayfs, or FAASBOX_ROOTFS=hardlink-farm)")
        line(
            "seccomp",
            FileSystem.readProcFile("/proc/self/status").contains("Seccomp:") ? "yes (filter compiled with libseccomp)" : "no")
        line("user namespaces", "max \(userNamespaces) (off by default: faasbox runs as root; `run --userns` turns one on)")
        line("faasbox-init", FunctionHost.initBinaryStatus)
        line("idle freezing", FunctionHost.freezerStatus)
        line("state dir", stateDirectoryUsage())
    }

    /// The state dir's filesystem: size and free space (where logs pause), or its nearest existing parent's.
    private func stateDirectoryUsage() -> String {
        var path = state.stateDir
        while !FileSystem.exists(path) && path != "/" && !path.isEmpty { path = (path as NSString).deletingLastPathComponent }
        guard let usage = FileSystem.usage(of: path.isEmpty ? "/" : path) else { return "\(state.stateDir): unknown" }
        let gb = { (bytes: Int64) in String(format: "%.1f GB", Double(bytes) / 1e9) }
        let created = path == state.stateDir ? "" : " (not created yet: the filesystem of \(path))"
        return "\(state.stateDir)\(created): \(gb(usage.free)) free of \(gb(usage.size)); logs pause below 64 MB "
            + "free (serve --log-reserve-mb), cold starts go on"
    }

    private func runIsolation() async throws {
        let verdicts: [IsolationCheck.Verdict]
        do {
            verdicts = try await IsolationCheck.run(
                probeImage: probeImage, store: state.openStore(), userNamespace: userns ? .default : nil, asRoot: asRoot)
        } catch { fail("the isolation probe could not run: \(error)") }
        for verdict in verdicts { print(verdict) }
        let broken = verdicts.filter { !$0.held }.count
        print("\(verdicts.count - broken) held, \(broken) broken")
        if broken > 0 { throw ExitCode(1) }
    }

    private func line(_ name: String, _ value: String) {
        print(name.padding(toLength: 17, withPad: " ", startingAt: 0) + value)
    }
}
