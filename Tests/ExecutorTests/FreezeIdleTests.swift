import Bootstrap
import Foundation
import ImageRuntime
import Sandbox
import TestSupport
import Testing

@testable import Executor

/// Idle instances are frozen between invocations: what a function leaves running after it answered spends no
/// CPU until its next invocation, which thaws it first and finds its state as it was.
@Suite struct FreezeIdleTests {
    let state = TestPaths.temporaryDirectory("freeze")

    /// hello-web, with a busy loop the function starts in the background and never stops.
    private func pool(freeze: Bool) throws -> FunctionPool {
        var config = FunctionConfig(name: "restless")
        config.command = ["/bin/sh", "-c", "(while :; do :; done) & exec nc -ll -p 9000 -e /usr/lib/hello-web/front"]
        config.stopGrace = .zero
        config.timeout = .seconds(30)
        config.freezeIdleAfter = freeze ? .milliseconds(50) : nil
        return FunctionPool(
            image: TestPaths.sampleImage("hello-web"), store: try ImageStore(root: state), config: config,
            concurrency: 1, idleTimeout: .seconds(60))
    }

    private func call(_ pool: FunctionPool, _ id: String) async throws -> FunctionPool.Outcome {
        try await pool.invoke(.http(HTTPRequest(method: "GET", target: "/hello")), requestID: id)
    }

    /// CPU time the idle instance's cgroup is charged over `window`, once it is frozen if `frozen`.
    private func idleCPU(_ pool: FunctionPool, over window: Duration, frozen: Bool) async throws -> (Duration, frozen: Bool) {
        let deadline = ContinuousClock.now + .seconds(5)
        while frozen, await pool.instances.first?.frozen != true, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let info = try #require(await pool.instances.first)
        let cgroup = try #require(CgroupHost.current.leftoverInstance(info.id))
        let before = try #require(cgroup.cpuUsage())
        try await Task.sleep(for: window)
        let after = try #require(cgroup.cpuUsage())
        return (after - before, info.frozen)
    }

    @Test func anIdleInstanceIsFrozenAndThawedByItsNextInvocation() async throws {
        let pool = try pool(freeze: true)
        let first = try await call(pool, "first")
        #expect(try first.response.status == 200)
        let (cpu, frozen) = try await idleCPU(pool, over: .milliseconds(500), frozen: true)
        #expect(frozen, "the idle instance is frozen")
        #expect(cpu < .milliseconds(10), "its busy loop ran \(cpu) in 500 ms idle")
        let second = try await call(pool, "second")
        #expect(try second.response.status == 200 && second.coldStart == nil, "the same instance answered, warm")
        #expect(second.instanceID == first.instanceID)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await pool.instances.first?.frozen == true, "and frozen again, 50 ms after")
        await pool.drain()
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    /// The control: with freezing off, the same leftover loop takes a core while the instance is idle.
    @Test func withoutFreezingTheLeftoverWorkRunsOn() async throws {
        let pool = try pool(freeze: false)
        #expect(try await call(pool, "only").response.status == 200)
        let (cpu, frozen) = try await idleCPU(pool, over: .seconds(1), frozen: false)
        #expect(!frozen)
        // (Its share of a loaded 2-core machine, where the whole suite runs at once, can be a few per cent.)
        #expect(cpu > .milliseconds(20), "its busy loop ran \(cpu) in 1 s idle")
        await pool.drain()
    }
}
