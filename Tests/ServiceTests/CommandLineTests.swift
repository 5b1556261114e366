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

    /// The listing commands print JSON with `--json` (the server's own objects), and `logs` puts each entry's
    /// time before its lines.
    @Test func listingsHaveJSONAndLogsHaveTimes() async throws {
        let state = TestPaths.temporaryDirectory("cli-json")
        let server = try TestServer.spawn(stateDir: state)
        defer { Task { await server.stop() } }
        _ = try await server.deploy("counter", image: "hello-runtime", ["type": "event"])
        _ = try await server.invoke("counter")
        let client = { (arguments: [String]) throws -> (status: Int32, output: String) in
            try TestPaths.run(self.faasbox, arguments, environment: ["FAASBOX_SERVER": "unix://\(server.socket)"])
        }
        func json(_ arguments: [String]) throws -> Any {
            let result = try client(arguments)
            #expect(result.status == 0, "\(arguments): \(result.output)")
            return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
        }
        let functions = try #require(try json(["functions", "--json"]) as? [[String: Any]])
        #expect(functions.count == 1 && (functions[0]["spec"] as? [String: Any])?["type"] as? String == "event")
        let instances = try #require(try json(["ps", "--json"]) as? [String: [[String: Any]]])
        #expect(instances["counter"]?.count == 1, "\(instances)")
        let logs = try #require(try json(["logs", "counter", "--json"]) as? [[String: Any]])
        #expect(logs.count == 1 && (logs[0]["text"] as? String)?.contains("REPORT RequestId") == true, "\(logs)")
        let text = try client(["logs", "counter"]).output
        let seconds = try #require(logs[0]["at"] as? Double)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let at = formatter.string(from: Date(timeIntervalSince1970: seconds))
        let lines = text.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix(at + "  ") }, "\(text)")
        let images = try #require(try json(["images", "--json", "--state-dir", state]) as? [[String: Any]])
        #expect(images.count == 1 && (images[0]["digest"] as? String)?.hasPrefix("sha256:") == true, "\(images)")
        await server.stop()
    }

    /// serve logs one line per invocation at info level: the function, the request id, the result, cold or warm.
    @Test func serveLogsEachInvocation() async throws {
        let state = TestPaths.temporaryDirectory("invocation-log")
        let errors = "\(state).log"
        let server = try TestServer.spawn(stateDir: state, extraArguments: ["--log-level", "info"], errors: errors)
        _ = try await server.deploy("counter", image: "hello-runtime", ["type": "event"])
        let first = try await server.invoke("counter")
        let second = try await server.invoke("counter")
        await server.stop()
        let log = try String(contentsOfFile: errors, encoding: .utf8)
        for (answer, kind) in [(first, "cold "), (second, "warm")] {
            let id = try #require(answer.json["FunctionRequestId"] as? String)
            let line = log.split(separator: "\n").first { $0.contains("invocation \(id) of counter: ok, \(kind)") }
            #expect(line?.contains(" info ") == true, "\(log)")
        }
    }
}
