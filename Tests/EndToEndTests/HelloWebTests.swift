import Bootstrap
import Foundation
import ImageRuntime
import Sandbox
import SystemSupport
import TestSupport
import Testing

/// hello-web, built by umoci and skopeo, cold-started through the modules' public API.
@Suite struct HelloWebTests {
    let state = TestPaths.temporaryDirectory("e2e")

    @Test func coldStartAnswersAndTearsDownCompletely() async throws {
        let store = try ImageStore(root: state)
        let clock = ContinuousClock()
        let begin = clock.now
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: store,
            config: FunctionConfig(name: "hello-web"))
        let measured = clock.now - begin
        let response = try await instance.invoke(HTTPRequest(method: "GET", target: "/hello?x=1"), requestID: "req-1")
        #expect(response.status == 200)
        #expect(response.bodyText.contains("method: GET"))
        #expect(response.bodyText.contains("path: /hello\n"))
        #expect(response.bodyText.contains("query: x=1"))

        let t = instance.timings
        #expect(t.pullCode > .zero && t.initRuntime > .zero && t.initFunction > .zero)
        #expect(t.pullCode + t.initRuntime + t.initFunction <= t.coldstart)
        #expect(t.coldstart <= measured)

        let pids = instance.process.cgroup.processes()
        let cgroupDirs = instance.process.cgroup.directories
        #expect(!pids.isEmpty)
        #expect(FileSystem.isMountPoint(instance.rootfs.path))
        await instance.stop()
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) of the instance is still alive") }
        for dir in cgroupDirs { #expect(!FileManager.default.fileExists(atPath: dir), "cgroup \(dir) remains") }
        #expect(!FileSystem.isMountPoint(instance.rootfs.path))
        #expect(TestPaths.mounts(containing: instance.rootfs.directory).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: instance.rootfs.directory))
    }

    /// hello-web closes each connection (nc forks a shell per connection): once faasbox has seen that, each
    /// invocation connects for the next one while the function answers it; one not used within a second is
    /// closed.
    @Test func aFunctionThatClosesEachConnectionGetsTheNextOneWhileItAnswers() async throws {
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: try ImageStore(root: state),
            config: FunctionConfig(name: "hello-web"))
        let first = try await instance.invoke(HTTPRequest(method: "GET", target: "/hello"), requestID: "req-1")
        #expect(first.status == 200)
        let slow = Task { try await instance.invoke(HTTPRequest(method: "GET", target: "/hello?sleep=3"), requestID: "req-2") }
        // The one answering req-2 and the one made ahead for the next invocation (polled: a loaded CI machine may
        // take a while to get there; the call lasts 3 s).
        var connections = 0
        let deadline = ContinuousClock.now + .milliseconds(2500)
        while connections != 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            connections = Self.establishedConnections(toPort: 9000, inNetworkOf: instance.process.pid)
        }
        #expect(connections == 2)
        let second = try await slow.value
        #expect(second.status == 200 && second.bodyText.contains("query: sleep=3"))
        let third = try await instance.invoke(HTTPRequest(method: "GET", target: "/hello?n=3"), requestID: "req-3")
        #expect(third.status == 200 && third.bodyText.contains("query: n=3"))
        // The one made ahead after req-3 is not used: closed after a second, so an idle instance holds none.
        let idleDeadline = ContinuousClock.now + .seconds(10)
        repeat {
            try await Task.sleep(for: .milliseconds(100))
            connections = Self.establishedConnections(toPort: 9000, inNetworkOf: instance.process.pid)
        } while connections != 0 && ContinuousClock.now < idleDeadline
        #expect(connections == 0)
        await instance.stop()
    }

    /// Connections to 127.0.0.1:`port` in ESTABLISHED state (faasbox's side of them), from /proc/PID/net/tcp:
    /// the table of the process's network namespace.
    static func establishedConnections(toPort port: UInt16, inNetworkOf pid: pid_t) -> Int {
        guard let table = try? String(contentsOfFile: "/proc/\(pid)/net/tcp", encoding: .utf8) else { return -1 }
        let remote = String(format: "0100007F:%04X", port)
        return table.split(separator: "\n").dropFirst().filter { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && fields[2] == remote && fields[3] == "01"
        }.count
    }

    @Test func aMissingImageIsAClearError() async throws {
        let store = try ImageStore(root: state)
        await #expect {
            _ = try await FunctionInstance.coldStart(
                image: "\(state)/missing.tar", store: store, config: FunctionConfig(name: "f"))
        } throws: { error in
            guard let e = error as? BootstrapError, case .image(.notFound) = e else { return false }
            return e.description.contains("missing.tar")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func aTarballThatIsNotAnOCILayoutIsAClearError() async throws {
        let path = "\(state)/not-oci.tar"
        try Data(OCIArchiveBuilder.tar([.file("README", "not an image")])).write(to: URL(fileURLWithPath: path))
        await #expect {
            _ = try await FunctionInstance.coldStart(
                image: path, store: try ImageStore(root: state), config: FunctionConfig(name: "f"))
        } throws: { error in
            guard let e = error as? BootstrapError, case .image(.notAnImageLayout) = e else { return false }
            return true
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func anImageWithoutBootstrapOrEntrypointIsRefusedBeforeAnythingRuns() async throws {
        let path = "\(state)/no-bootstrap.tar"
        try OCIArchiveBuilder(layers: [.init(try OCIArchiveBuilder.busyboxEntries())]).write(to: path)
        await #expect {
            _ = try await FunctionInstance.coldStart(
                image: path, store: try ImageStore(root: state), config: FunctionConfig(name: "f"))
        } throws: { error in
            guard let e = error as? BootstrapError, case .noBootstrap = e else { return false }
            return e.code == .containerStateExited
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
        #expect(TestPaths.mounts(containing: state).isEmpty)
    }

    @Test func aFunctionThatNeverListensTimesOutAndIsTornDown() async throws {
        let path = "\(state)/never.tar"
        var builder = OCIArchiveBuilder(layers: [
            .init(
                try OCIArchiveBuilder.busyboxEntries()
                    + [.file("scf_bootstrap", "#!/bin/sh\necho still-initialising\nexec sleep 1000\n", mode: 0o755)])
        ])
        builder.env = ["PATH=/bin"]
        try builder.write(to: path)
        var config = FunctionConfig(name: "never")
        config.initTimeout = .milliseconds(300)
        let store = try ImageStore(root: state)
        _ = try await store.pull(path)  // so that the time below is the cold start's, not the unpack's
        let clock = ContinuousClock()
        let begin = clock.now
        await #expect {
            _ = try await FunctionInstance.coldStart(image: path, store: store, config: config)
        } throws: { error in
            guard let e = error as? BootstrapError, case .initTimeout = e else { return false }
            return e.description.contains("timed out in 300ms") && e.output?.contains("still-initialising") == true
        }
        #expect(clock.now - begin < .seconds(20))
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
        #expect(TestPaths.mounts(containing: state).isEmpty)
    }

    @Test func aBootstrapThatExitsIsReportedWithItsOutput() async throws {
        let path = "\(state)/crash.tar"
        try OCIArchiveBuilder(layers: [
            .init(
                try OCIArchiveBuilder.busyboxEntries()
                    + [.file("scf_bootstrap", "#!/bin/sh\necho cannot start >&2\nexit 3\n", mode: 0o755)])
        ]).write(to: path)
        await #expect {
            _ = try await FunctionInstance.coldStart(
                image: path, store: try ImageStore(root: state), config: FunctionConfig(name: "c"))
        } throws: { error in
            guard let e = error as? BootstrapError, case .exitedDuringInit(let status, let output) = e else { return false }
            return status == .exited(3) && output.contains("cannot start") && e.code == .containerStateExited
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }
}
