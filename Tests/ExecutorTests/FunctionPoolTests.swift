import Bootstrap
import Foundation
import ImageRuntime
import TestSupport
import Testing

@testable import Executor

/// The instance pool of one function, with real instances of the sample images.
@Suite struct FunctionPoolTests {
    let state = TestPaths.temporaryDirectory("pool")

    private func runtimePool(concurrency: Int = 2, idleTimeout: Duration = .seconds(60)) throws -> FunctionPool {
        var config = FunctionConfig(name: "hello-runtime")
        config.kind = .event
        config.stopGrace = .zero
        config.timeout = .seconds(30)
        return FunctionPool(
            image: TestPaths.sampleImage("hello-runtime"), store: try ImageStore(root: state), config: config,
            concurrency: concurrency, idleTimeout: idleTimeout)
    }

    private func count(_ outcome: FunctionPool.Outcome) throws -> Int? {
        (try JSONSerialization.jsonObject(with: Data(outcome.response.body)) as? [String: Any])?["count"] as? Int
    }

    @Test func aWarmInstanceIsReusedAndKeepsItsState() async throws {
        let pool = try runtimePool()
        var outcomes: [FunctionPool.Outcome] = []
        for i in 1...3 {
            outcomes.append(try await pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "r\(i)"))
        }
        #expect(try outcomes.map(count) == [1, 2, 3], "the same process answered: its counter went on")
        #expect(outcomes[0].coldStart != nil && outcomes[1].coldStart == nil && outcomes[2].coldStart == nil)
        #expect(outcomes[0].logLines.first?.hasPrefix("hello-runtime: initialising") == true, "init output on the cold one")
        #expect(outcomes[2].logLines == ["hello-runtime: invocation 3 (request r3, 30000 ms)"])
        #expect(await pool.idleCount == 1)
        await pool.drain()
        #expect(await pool.idleCount == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func pastTheConcurrencyLimitACallIsRefusedWith432AtOnce() async throws {
        let pool = try runtimePool(concurrency: 1)
        let slow = Task {
            try await pool.invoke(.event(try Event(Array(#"{"hang":true}"#.utf8), kind: .event)), requestID: "slow")
        }
        while await pool.busyCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let begin = ContinuousClock.now
        await #expect {
            _ = try await pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "over")
        } throws: { error in
            (error as? InvocationError)?.code == .concurrencyLimitExceeded
        }
        #expect(ContinuousClock.now - begin < .seconds(1), "refused at once, not queued")
        slow.cancel()
        _ = try? await slow.value
        await pool.drain()
    }

    @Test func idleInstancesAreReclaimedAndAFailedOneIsNeverReused() async throws {
        let pool = try runtimePool(idleTimeout: .milliseconds(100))
        _ = try await pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "a")
        #expect(await pool.reclaimIdle() == 0, "not idle long enough yet")
        try await Task.sleep(for: .milliseconds(150))
        #expect(await pool.reclaimIdle() == 1)
        #expect(await pool.idleCount == 0)

        let first = try await pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "b")
        #expect(try count(first) == 1, "a new instance after the reclaim")
        await #expect(throws: InvocationError.self) {
            _ = try await pool.invoke(.event(try Event(Array(#"{"crash":true}"#.utf8), kind: .event)), requestID: "c")
        }
        let next = try await pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "d")
        #expect(try count(next) == 1 && next.coldStart != nil, "the crashed instance was discarded")
        await pool.drain()
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }

    @Test func aJobRunsOnAnInstanceOfItsOwnEachTime() async throws {
        var config = FunctionConfig(name: "hello-job")
        config.kind = .job
        let pool = FunctionPool(
            image: TestPaths.sampleImage("hello-job"), store: try ImageStore(root: state), config: config, concurrency: 2,
            idleTimeout: .seconds(60))
        let outcome = try await pool.invoke(.event(try Event(Array(#"{"n":1}"#.utf8), kind: .job)), requestID: "j")
        #expect(outcome.coldStart != nil)
        #expect(outcome.logLines.contains("hello-job: done"))
        #expect(await pool.idleCount == 0)
    }

    @Test func provisionedInstancesAreStartedAheadReportedAndNeverReclaimed() async throws {
        let pool = try runtimePool(concurrency: 2, idleTimeout: .zero)
        let reports = try await pool.provision(2)
        #expect(reports.count == 2)
        for report in reports {
            #expect(report.line.hasPrefix("Provisioned Report InstanceId: fb-"), "\(report.line)")
            #expect(report.line.hasPrefix("Provisioned Report InstanceId: \(report.instanceID) "), "the id it names is its own")
            for field in ["Coldstart: ", "PullCode: ", "InitRuntime: ", "InitFunction: ", "Overhead: "] {
                #expect(report.line.contains(field), "\(field) in \(report.line)")
            }
        }
        #expect(await pool.reclaimIdle() == 0, "provisioned instances stay warm")
        async let a = pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "p1")
        async let b = pool.invoke(.event(try Event(Array("{}".utf8), kind: .event)), requestID: "p2")
        let (first, second) = try await (a, b)
        #expect(first.coldStart == nil && second.coldStart == nil, "both calls found a warm instance")
        #expect(await pool.idleCount == 2)
        await pool.drain()
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").isEmpty)
    }
}
