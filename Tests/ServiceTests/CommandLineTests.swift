import Foundation
import TestSupport
import Testing

/// The command line as a person meets it (issue 18): its version, what it says to a user who is not root, and a
/// `--listen` it cannot have.
@Suite struct CommandLineTests {
    let faasbox = "\(TestPaths.packageRoot)/.build/debug/faasbox"

    @Test func versionIsPrinted() throws {
        let result = try TestPaths.run(faasbox, ["--version"])
        #expect(result.status == 0)
        #expect(result.output.hasPrefix("faasbox 0."), "\(result.output)")
    }

    /// Commands that need root say so before they try anything; `doctor` says it and goes on.
    @Test(arguments: [
        ["run", "\(TestPaths.imagesDirectory)/hello-web.tar"], ["serve", "--socket", "/tmp/faasbox-nobody.sock"],
        ["pull", "\(TestPaths.imagesDirectory)/hello-web.tar"], ["bench", "\(TestPaths.imagesDirectory)/hello-web.tar"],
    ])
    func aCommandThatNeedsRootSaysSoToAnyoneElse(arguments: [String]) throws {
        let result = try TestPaths.run(
            "/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", faasbox] + arguments)
        #expect(result.status != 0)
        #expect(
            result.output.contains("faasbox \(arguments[0]) needs root (namespaces, overlay mounts, cgroups)"),
            "\(result.output)")
        #expect(!result.output.contains("Permission denied"), "\(result.output)")
    }

    @Test func doctorSaysWhetherItRunsAsRoot() throws {
        let nobody = try TestPaths.run(
            "/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", faasbox, "doctor"])
        #expect(nobody.output.contains("not root: run, serve, pull and bench need root"), "\(nobody.output)")
        let root = try TestPaths.run(faasbox, ["doctor", "--state-dir", TestPaths.temporaryDirectory("doctor-root")])
        #expect(root.output.split(separator: "\n").contains { $0.hasPrefix("privileges") && $0.hasSuffix("root") })
    }

    /// A taken port is an error at once, before any listener starts; so is a port that does not exist.
    @Test func aListenAddressThatCannotBeHadIsRefusedBeforeAnythingStarts() throws {
        let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(taken) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(taken, $0, length) == 0 && listen(taken, 1) == 0 && getsockname(taken, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let state = TestPaths.temporaryDirectory("listen-taken")
        let socketPath = "\(state).sock"
        let result = try TestPaths.run(
            faasbox, ["serve", "--socket", socketPath, "--state-dir", state, "--listen", "127.0.0.1:\(port)"])
        #expect(result.status != 0)
        #expect(result.output.contains("127.0.0.1:\(port) is already in use; choose another with --listen"), "\(result.output)")
        #expect(!result.output.contains("listening on"), "nothing started: \(result.output)")
        #expect(!FileManager.default.fileExists(atPath: socketPath))

        let tooHigh = try TestPaths.run(faasbox, ["serve", "--socket", socketPath, "--state-dir", state, "--listen", ":99999"])
        #expect(tooHigh.status != 0 && tooHigh.output.contains("a port 0–65535"), "\(tooHigh.output)")
    }
}
