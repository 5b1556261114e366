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
