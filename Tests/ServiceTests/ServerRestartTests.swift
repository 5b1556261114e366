import Foundation
import Sandbox
import TestSupport
import Testing

@testable import Executor
@testable import Service

/// `faasbox serve` as a child process: kill -9 with events queued and in flight loses none, and SIGTERM
/// finishes what is in flight before the instances stop.
@Suite(.serialized) struct ServerRestartTests {
    /// A host directory the hello-event function appends each run's request id to (mounted at /mnt/witness).
    private func witnessDirectory() -> String {
        let dir = TestPaths.temporaryDirectory("witness")
        chmod(dir, 0o777)
        return dir
    }

    private func runs(_ witness: String) -> [String: Int] {
        let text = (try? String(contentsOfFile: "\(witness)/seen", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").reduce(into: [:]) { $0[String($1), default: 0] += 1 }
    }

    private func counts(_ server: TestServer, _ name: String) async throws -> [String: Int] {
        try await server.call(.GET, "/functions/\(name)").json["events"] as? [String: Int] ?? [:]
    }

    /// Whether `pid` is a live process (not gone, not a zombie waiting for whoever adopted it to reap it).
    private func isRunning(_ pid: Int) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    @Test func killMinus9WithEventsQueuedLosesNone() async throws {
        let state = TestPaths.temporaryDirectory("restart")
        let witness = witnessDirectory()
        var server = try TestServer.spawn(stateDir: state, extraArguments: ["--allow-mount", witness])
        let spec: [String: Any] = [
            "type": "event", "timeout": 30, "concurrency": 4,
            "mounts": [["source": witness, "target": "/mnt/witness", "readOnly": false]],
        ]
        #expect(try await server.deploy("ledger", image: "hello-event", spec).status == 200)
        let total = 1000
        var ids: [String] = []
        let first = server
        for start in stride(from: 0, to: total, by: 20) {
            let batch = try await withThrowingTaskGroup(of: String.self) { group in
                for i in start..<start + 20 {
                    group.addTask {
                        let answer = try await first.invoke("ledger", #"{"n":\#(i),"pause":true}"#, async: true)
                        return answer.json["FunctionRequestId"] as? String ?? "refused \(answer.status)"
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            ids += batch
        }
        #expect(ids.allSatisfy { !$0.hasPrefix("refused") })
        // Kill it part-way: some done, some running, most still queued.
        while try await counts(server, "ledger")["succeeded", default: 0] < 100 { try await Task.sleep(for: .milliseconds(10)) }
        server.kill9()
        let doneBeforeKill = runs(witness).count
        #expect(doneBeforeKill < total, "the kill came part-way")

        server = try TestServer.spawn(stateDir: state, extraArguments: ["--allow-mount", witness])
        let deadline = ContinuousClock.now + .seconds(300)
        var events: [String: Int] = [:]
        while ContinuousClock.now < deadline {
            events = try await counts(server, "ledger")
            if events["succeeded", default: 0] == total { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(events == ["succeeded": total], "every event completed, none dead: \(events)")

        let seen = runs(witness)
        let lost = ids.filter { seen[$0] == nil }
        #expect(lost.isEmpty, "\(lost.count) events never ran")
        // An event ran more than once only if it was in flight at the kill: those were tried twice.
        var repeated = 0
        for id in ids where seen[id, default: 0] > 1 {
            repeated += 1
            let attempts = try await server.call(.GET, "/functions/ledger/invocations/\(id)").json["attempts"] as? Int
            #expect(attempts == seen[id], "\(id) ran \(seen[id]!) times in \(attempts ?? 0) tries")
        }
        #expect(repeated <= 4, "at most the concurrency limit was in flight at the kill (\(repeated))")
        #expect(seen.keys.allSatisfy { Set(ids).contains($0) })
        await server.stop()
    }

    @Test func aRestartRemovesTheInstancesADeadServerLeft() async throws {
        let state = TestPaths.temporaryDirectory("leftover")
        var server = try TestServer.spawn(stateDir: state)
        // A web function: its server keeps running without faasbox (a custom runtime would exit when its
        // runtime API goes away).
        _ = try await server.deploy("warm", image: "hello-web", ["provisioned": 2])
        var before = try await server.instances("warm")
        let idleBy = ContinuousClock.now + .seconds(5)
        while !before.allSatisfy({ $0["frozen"] as? Bool == true }) && ContinuousClock.now < idleBy {
            try await Task.sleep(for: .milliseconds(20))
            before = try await server.instances("warm")
        }
        let pids = before.compactMap { $0["pid"] as? Int }
        #expect(pids.count == 2)
        // Idle (past 50 ms), so frozen: pid 1 stays out of the freeze to see the lifeline end, and thaws the program so the
        // kill takes (a v1-frozen process dies only once thawed).
        #expect(before.allSatisfy { $0["frozen"] as? Bool == true }, "\(before)")
        let freezers = before.compactMap { ($0["id"] as? String).flatMap { CgroupHost.current.leftoverInstance($0)?.freezer } }
        let frozenBy = ContinuousClock.now + .seconds(5)
        while !freezers.allSatisfy(\.isFrozen) && ContinuousClock.now < frozenBy { try await Task.sleep(for: .milliseconds(10)) }
        #expect(freezers.count == 2 && freezers.allSatisfy(\.isFrozen))
        server.kill9()
        // The instances die with it (their pid 1 holds the server's lifeline), at once.
        let clock = ContinuousClock()
        let killed = clock.now
        while pids.contains(where: isRunning) && clock.now - killed < .seconds(5) { try await Task.sleep(for: .milliseconds(10)) }
        let gone = clock.now - killed
        #expect(
            !pids.contains(where: isRunning),
            "the instances die with a killed server: \(pids.map { (try? String(contentsOfFile: "/proc/\($0)/status", encoding: .utf8))?.split(separator: "\n").prefix(8).joined(separator: "; ") ?? "-" })"
        )
        #expect(gone < .seconds(1), "within \(gone)")
        // What they leave on disk is the next server's to remove.
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances").count == 2)

        server = try TestServer.spawn(stateDir: state)
        let after = try await server.instances("warm").compactMap { $0["id"] as? String }
        #expect(after.count == 2, "the function was deployed again with its provisioned instances")
        let directories = try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances")
        #expect(Set(directories) == Set(after), "only the new instances' directories remain")
        for id in before.compactMap({ $0["id"] as? String }) {
            #expect(TestPaths.mounts(containing: id).isEmpty, "\(id)'s rootfs is unmounted")
            #expect(CgroupHost.current.leftoverInstance(id) == nil, "\(id)'s cgroup is removed")
        }
        let second = try? TestServer.spawn(stateDir: state)
        #expect(second == nil, "a second server on the same state dir is refused")
        await server.stop()
    }

    /// `--freeze-idle-after`: how long an instance idles before it is frozen, or never; a bad value is refused.
    @Test func serveFreezesIdleInstancesAsItIsTold() async throws {
        for (argument, frozen) in [("never", false), ("0", true)] {
            let server = try TestServer.spawn(
                stateDir: TestPaths.temporaryDirectory("freeze-flag"), extraArguments: ["--freeze-idle-after", argument])
            _ = try await server.deploy("warm", image: "hello-keepalive", ["provisioned": 1])
            try await Task.sleep(for: .milliseconds(300))
            let instances = try await server.instances("warm")
            #expect(instances.count == 1 && instances.allSatisfy { $0["frozen"] as? Bool == frozen }, "\(argument): \(instances)")
            await server.stop()
        }
        let refused = try TestPaths.run(
            "\(TestPaths.packageRoot)/.build/debug/faasbox", ["serve", "--freeze-idle-after", "soon"])
        #expect(refused.status != 0 && refused.output.contains("--freeze-idle-after"), "\(refused.output)")
    }

    /// `faasbox doctor` says how idle instances are frozen here and how full the state dir's filesystem is.
    @Test func doctorSaysHowIdleInstancesAreFrozenAndHowFullTheStateDirIs() throws {
        let state = TestPaths.temporaryDirectory("doctor")
        let report = try TestPaths.run("\(TestPaths.packageRoot)/.build/debug/faasbox", ["doctor", "--state-dir", state])
        #expect(report.status == 0, "\(report.output)")
        let lines = report.output.split(separator: "\n")
        let freezing = try #require(lines.first { $0.hasPrefix("idle freezing") })
        #expect(freezing.contains("freeze") && freezing.contains("50 ms"), "\(freezing)")
        let stateLine = try #require(lines.first { $0.hasPrefix("state dir") })
        #expect(stateLine.contains(state) && stateLine.contains("GB free of"), "\(stateLine)")
    }

    /// serve raises its soft limit on open descriptors to the hard one (a few per instance; 1024 is common).
    @Test func serveRaisesItsDescriptorLimit() async throws {
        let server = try TestServer.spawn(stateDir: TestPaths.temporaryDirectory("nofile"), openFiles: (256, 4096))
        defer { Task { await server.stop() } }
        let pid = try #require(server.process?.processIdentifier)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        #expect(line.split(separator: " ").filter { Int($0) != nil } == ["4096", "4096"], "\(line)")
        await server.stop()
    }

    @Test func sigtermFinishesInFlightCallsThenStopsEveryInstance() async throws {
        let state = TestPaths.temporaryDirectory("sigterm")
        let server = try TestServer.spawn(stateDir: state, extraArguments: ["--grace", "10"])
        _ = try await server.deploy("slow", image: "hello-job", ["type": "job", "timeout": 30])
        _ = try await server.deploy("idle", image: "hello-runtime", ["type": "event", "provisioned": 1])
        async let inFlight = server.invoke("slow", #"{"sleep":2}"#)
        while try await server.instances("slow").isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        let pid = try #require(server.process?.processIdentifier)
        kill(pid, SIGTERM)
        let answer = try await inFlight
        #expect(answer.status == 200, "the call in flight finished: \(answer.text)")
        #expect(answer.json["InvokeResult"] as? Int == 0)
        server.process?.waitUntilExit()
        #expect(server.process?.terminationStatus == 0)
        let remaining = try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances")
        #expect(remaining.isEmpty, "every instance stopped: \(remaining)")
    }

    @Test func sigtermLetsAWebCallInFlightFinish() async throws {
        let state = TestPaths.temporaryDirectory("sigterm-web")
        let server = try TestServer.spawn(stateDir: state, extraArguments: ["--grace", "10"])
        _ = try await server.deploy("site", image: "hello-web", ["provisioned": 1])
        async let inFlight = server.call(.GET, "/web/site/hello?sleep=2")
        try await Task.sleep(for: .milliseconds(500))
        let pid = try #require(server.process?.processIdentifier)
        kill(pid, SIGTERM)
        let answer = try await inFlight
        #expect(answer.status == 200, "the call in flight finished: \(answer.text)")
        #expect(answer.text.contains("query: sleep=2"))
        server.process?.waitUntilExit()
        #expect(server.process?.terminationStatus == 0)
        let remaining = try FileManager.default.contentsOfDirectory(atPath: "\(state)/instances")
        #expect(remaining.isEmpty, "every instance stopped: \(remaining)")
    }
}
