import Bootstrap
import Foundation
import ImageRuntime
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct InvocationTimeoutTests {
    @Test func aHungInvocationIsKilledAtItsTimeoutWithTheContractsCode() async throws {
        let state = TestPaths.temporaryDirectory("timeout")
        var config = FunctionConfig(name: "hang")
        // Accepts on :9000 but never answers.
        config.command = ["/bin/sh", "-c", "exec nc -ll -p 9000 -e /bin/sleep 30"]
        let store = try ImageStore(root: state)
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: store, config: config)
        let pids = instance.process.cgroup.processes()
        let clock = ContinuousClock()
        let begin = clock.now
        await #expect {
            _ = try await instance.invoke(HTTPRequest(method: "GET", target: "/"), requestID: "r", timeout: .milliseconds(300))
        } throws: { error in
            guard let e = error as? BootstrapError, case .timedOut = e else { return false }
            return e.code == .timeLimitReached
        }
        #expect(clock.now - begin < .seconds(15), "killed at the timeout, not after the 30 s sleep")
        for pid in pids { #expect(kill(pid, 0) != 0) }
        #expect(!FileManager.default.fileExists(atPath: instance.rootfs.directory))
        try await expectTheNextColdStartAnswers(store)
    }
}

/// After a failed invocation, the next one (a fresh instance of hello-web) answers normally.
func expectTheNextColdStartAnswers(_ store: ImageStore) async throws {
    let next = try await FunctionInstance.coldStart(
        image: TestPaths.sampleImage("hello-web"), store: store, config: FunctionConfig(name: "hello-web"))
    let response = try await next.invoke(HTTPRequest(method: "GET", target: "/hello"), requestID: "next", timeout: .seconds(30))
    await next.stop(grace: .zero)
    #expect(response.status == 200 && response.bodyText.contains("hello from faasbox"))
}

@Suite struct InvocationFailureTests {
    @Test func aWebFunctionThatDiesDuringAnInvocationIs439() async throws {
        var config = FunctionConfig(name: "crash")
        // The readiness probe sends nothing; a real request kills the server (the bootstrap) mid-answer.
        config.command = ["/bin/sh", "-c", #"exec nc -ll -p 9000 -e /bin/sh -c 'read l; [ -n "$l" ] && kill -9 $PPID'"#]
        let store = try ImageStore(root: TestPaths.temporaryDirectory("crash"))
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: store, config: config)
        await #expect {
            _ = try await instance.invoke(HTTPRequest(method: "GET", target: "/"), requestID: "r", timeout: .seconds(30))
        } throws: { error in
            (error as? BootstrapError)?.code == .userProcessExited
        }
        await instance.stop()
        try await expectTheNextColdStartAnswers(store)
    }

    @Test func runningOutOfMemoryDuringAnInvocationIsReportedAs434() async throws {
        var config = FunctionConfig(name: "hog")
        config.memoryMB = 64
        // Each connection's handler keeps a 200 MB line in memory: past 64 MB in well under a second (a `tr` in
        // the pipe, once, made it take over 20 s on a loaded CI machine).
        config.command = ["/bin/sh", "-c", "exec nc -ll -p 9000 -e /bin/sh -c 'head -c 200000000 /dev/zero | sort'"]
        let store = try ImageStore(root: TestPaths.temporaryDirectory("oom"))
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: store, config: config)
        await #expect {
            _ = try await instance.invoke(HTTPRequest(method: "GET", target: "/"), requestID: "r", timeout: .seconds(20))
        } throws: { error in
            guard let e = error as? BootstrapError, case .memoryLimitExceeded(64) = e else { return false }
            return e.code == .memoryLimitReached
        }
        await instance.stop()
        try await expectTheNextColdStartAnswers(store)
    }
}

/// Stopping an instance: SIGTERM, the grace period, then SIGKILL of the whole cgroup.
@Suite struct GracefulStopTests {
    /// An instance of hello-web running `script` (sh -c) with a stop grace period of `grace`.
    private func start(_ name: String, grace: Duration, _ script: String) async throws -> FunctionInstance {
        var config = FunctionConfig(name: name)
        config.stopGrace = grace
        config.command = ["/bin/sh", "-c", script]
        return try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: try ImageStore(root: TestPaths.temporaryDirectory("grace")),
            config: config)
    }

    @Test func aFunctionThatHandlesSIGTERMFinishesWithinTheGracePeriod() async throws {
        let instance = try await start(
            "polite", grace: .seconds(30), "trap 'echo goodbye; exit 0' TERM; nc -ll -p 9000 -e /bin/true & wait")
        let begin = ContinuousClock.now
        await instance.stop()
        await instance.output.waitForEOF()
        #expect(ContinuousClock.now - begin < .seconds(20), "it exited on SIGTERM, not at the end of the grace period")
        #expect(instance.output.text.contains("goodbye"), "SIGTERM reached the function: \(instance.output.text)")
        #expect(instance.process.exitStatus == .exited(0))
    }

    @Test func aFunctionThatIgnoresSIGTERMIsKilledWhenTheGracePeriodEnds() async throws {
        let instance = try await start("stubborn", grace: .milliseconds(400), "trap '' TERM; exec nc -ll -p 9000 -e /bin/true")
        let pids = instance.process.cgroup.processes()
        let begin = ContinuousClock.now
        await instance.stop()
        let took = ContinuousClock.now - begin
        #expect(took >= .milliseconds(400) && took < .seconds(20), "\(took)")
        for pid in pids { #expect(kill(pid, 0) != 0) }
    }
}
