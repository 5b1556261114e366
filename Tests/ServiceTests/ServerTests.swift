import Foundation
import TestSupport
import Testing

@testable import Executor
@testable import Service

/// The HTTP API of `faasbox serve`, over real HTTP, with real instances of the sample images.
@Suite struct ServerTests {
    @Test func syncInvocationsReuseAWarmInstanceAndReturnTheContractsShape() async throws {
        try await withServer { server in
            #expect(try await server.deploy("counter", image: "hello-runtime", ["type": "event", "timeout": 30]).status == 200)
            var answers: [TestServer.Answer] = []
            for i in 1...3 { answers.append(try await server.invoke("counter", #"{"n":\#(i)}"#, tail: true)) }
            #expect(answers.map(\.status) == [200, 200, 200])
            #expect(answers.map { $0.returned["count"] as? Int } == [1, 2, 3], "one process, its counter survives")
            let first = answers[0].json
            for key in ["FunctionRequestId", "InvokeResult", "RetMsg", "ErrMsg", "Duration", "BillDuration", "MemUsage", "Log"] {
                #expect(first[key] != nil, "result has \(key)")
            }
            #expect(first["InvokeResult"] as? Int == 0)
            #expect((first["MemUsage"] as? Int ?? 0) > 0)
            #expect((first["BillDuration"] as? Int ?? 0) >= Int((first["Duration"] as? Double ?? 0).rounded(.down)))
            let id = try #require(first["FunctionRequestId"] as? String)
            let log = try #require(first["Log"] as? String)
            #expect(log.hasPrefix("START RequestId: \(id)"))
            #expect(log.contains("END RequestId: \(id)") && log.contains("REPORT RequestId: \(id)"))
            #expect(log.contains("Init Report RequestId: \(id) Coldstart:"), "the first call started the instance")
            #expect(!(answers[1].json["Log"] as? String ?? "").contains("Init Report"), "the second was warm")
            #expect(answers[1].json["Log"] == nil || answers[1].json["Log"] is String)
            #expect(try await server.invoke("counter").json["Log"] == nil, "no Log without X-Scf-Log-Type: Tail")

            let logs = try await server.call(.GET, "/functions/counter/logs?requestId=\(id)").array
            #expect(logs.count == 1)
            #expect(((logs.first as? [String: Any])?["text"] as? String)?.contains("invocation 1 (request \(id)") == true)
        }
    }

    @Test func anInvalidConfigIsRefusedNamingTheField() async throws {
        try await withServer { server in
            let cases: [(String, [String: Any], String)] = [
                ("ok-name", ["memorySize": 100], "memorySize"),
                ("ok-name", ["memorySize": 4096], "memorySize"),
                ("ok-name", ["timeout": 0], "timeout"),
                ("ok-name", ["timeout": 901], "timeout"),
                ("ok-name", ["type": "cron"], "type"),
                ("ok-name", ["concurrency": 0], "concurrency"),
                ("ok-name", ["provisioned": 5, "concurrency": 2], "provisioned"),
                ("ok-name", ["network": "bridge"], "network"),
                ("ok-name", ["env": ["1BAD": "x"]], "env"),
                ("ok-name", ["image": "/nonexistent.tar"], "image"),
                ("9starts-with-digit", [:], "name"),
            ]
            for (name, fields, field) in cases {
                let answer = try await server.deploy(name, image: "hello-web", fields)
                #expect(answer.status == 400, "\(fields)")
                let message = (answer.json["Error"] as? [String: Any])?["Message"] as? String ?? ""
                #expect(message.contains("\(field):"), "\(fields) → \(message)")
            }
            #expect(try await server.call(.GET, "/functions").array.isEmpty, "nothing was deployed")
            let garbage = try await server.call(.PUT, "/functions/x1", body: "not json")
            #expect(garbage.status == 400)
        }
    }

    @Test func overTheConcurrencyLimitASyncCallGets432AtOnce() async throws {
        try await withServer { server in
            _ = try await server.deploy(
                "one-at-a-time", image: "hello-runtime", ["type": "event", "concurrency": 1, "timeout": 2])
            async let hung = server.invoke("one-at-a-time", #"{"hang":true}"#)
            while try await server.instances("one-at-a-time").first?["state"] as? String != "busy" {
                try await Task.sleep(for: .milliseconds(20))
            }
            let clock = ContinuousClock()
            let begin = clock.now
            let refused = try await server.invoke("one-at-a-time")
            #expect(clock.now - begin < .seconds(1), "refused at once, not queued")
            #expect(refused.status == 432)
            #expect(refused.json["InvokeResult"] as? Int == 432)
            let timedOut = try await hung
            #expect(timedOut.status == 433)
            #expect((timedOut.json["ErrMsg"] as? String)?.contains("timed out") == true)
            #expect(try await server.invoke("one-at-a-time").status == 200, "a new instance answers after the timeout")
        }
    }

    @Test func asyncEventsAreQueuedRunRetriedAndDeadLettered() async throws {
        try await withServer { server in
            _ = try await server.deploy("queued", image: "hello-runtime", ["type": "event", "timeout": 10])
            var ids: [String] = []
            for i in 0..<6 {
                let answer = try await server.invoke("queued", #"{"i":\#(i)}"#, async: true)
                #expect(answer.status == 202)
                ids.append(try #require(answer.json["FunctionRequestId"] as? String))
            }
            let failing = try #require(
                try await server.invoke("queued", #"{"fail":true}"#, async: true).json["FunctionRequestId"] as? String)
            let tooBig = try await server.invoke("queued", "[" + String(repeating: "1,", count: 70_000) + "1]", async: true)
            #expect(tooBig.status == 406, "async events are limited to 128 KB")
            let notJSON = try await server.invoke("queued", "{", async: true)
            #expect(notJSON.status == 400)

            func state(_ id: String) async throws -> [String: Any] {
                try await server.call(.GET, "/functions/queued/invocations/\(id)").json
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let states = try await (ids + [failing]).asyncMap { try await state($0)["state"] as? String }
                if states.allSatisfy({ $0 == "succeeded" || $0 == "dead" }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            for id in ids {
                let s = try await state(id)
                #expect(s["state"] as? String == "succeeded")
                #expect(s["attempts"] as? Int == 1)
                let result = s["result"] as? [String: Any]
                #expect(result?["InvokeResult"] as? Int == 0)
                #expect((result?["RetMsg"] as? String)?.contains(id) == true)
            }
            let dead = try await state(failing)
            #expect(dead["state"] as? String == "dead")
            #expect(dead["attempts"] as? Int == 3, "the first try and 2 retries")
            #expect((dead["result"] as? [String: Any])?["InvokeResult"] as? Int == 430)
            let logs = try await server.call(.GET, "/functions/queued/logs?requestId=\(failing)").array
            #expect(logs.count == 3, "one log per try")
            #expect(try await server.call(.GET, "/functions/queued/invocations/nope").status == 404)

            let metrics = try await server.call(.GET, "/metrics").text
            #expect(metrics.contains(#"faasbox_invocations_total{function="queued",result="success"} 6"#))
            #expect(metrics.contains(#"faasbox_invocations_total{function="queued",result="430"} 3"#))
            #expect(metrics.contains(#"faasbox_async_queue_depth{function="queued"} 0"#))
            let cold = metric(metrics, #"faasbox_starts_total{function="queued",start="cold"}"#) ?? 0
            let warm = metric(metrics, #"faasbox_starts_total{function="queued",start="warm"}"#) ?? 0
            #expect(cold >= 1 && cold + warm == 9, "9 tries, each on a new or a reused instance")
            #expect(metric(metrics, #"faasbox_cold_start_phase_seconds_count{function="queued",phase="InitRuntime"}"#) == cold)
            #expect(metric(metrics, #"faasbox_invocation_duration_seconds_count{function="queued"}"#) == 9)
            #expect((metric(metrics, #"faasbox_instances{function="queued",state="idle"}"#) ?? 0) >= 1)
            #expect(try await server.call(.GET, "/healthz").json["status"] as? String == "ok")
        }
    }

    @Test func aWebFunctionIsReachedThroughThePassthrough() async throws {
        try await withServer { server in
            _ = try await server.deploy("site", image: "hello-web")
            let answer = try await server.call(.GET, "/web/site/hello?lang=en", headers: [("X-Test", "1")])
            #expect(answer.status == 200)
            #expect(answer.text.contains("path: /hello"))
            #expect(answer.text.contains("query: lang=en"))
            #expect(answer.headers["Content-Type"].first == "text/plain")
            #expect(try await server.call(.POST, "/web/site/hello", body: "x").text.contains("method: POST"))
            let notFound = try await server.call(.GET, "/web/nosuch/hello")
            #expect(notFound.status == 404)
            let wrongKind = try await server.invoke("site")
            #expect(wrongKind.status == 400, "a web function is not invoked with an event")
        }
    }

    @Test func idleInstancesAreReclaimedAndProvisionedOnesKept() async throws {
        try await withServer { server in
            _ = try await server.deploy("brief", image: "hello-runtime", ["type": "event", "idleTimeout": 1])
            let deployed = try await server.deploy(
                "kept", image: "hello-runtime", ["type": "event", "idleTimeout": 1, "provisioned": 1])
            let reports = deployed.json["provisionedReports"] as? [String] ?? []
            #expect(reports.count == 1)
            #expect(reports.first?.hasPrefix("Provisioned Report InstanceId: fb-") == true)
            for field in ["Coldstart:", "PullCode:", "InitRuntime:", "InitFunction:"] {
                #expect(reports.first?.contains(field) == true)
            }
            _ = try await server.invoke("brief")
            #expect(try await server.instances("brief").count == 1)
            try await Task.sleep(for: .milliseconds(2500))
            #expect(try await server.instances("brief").isEmpty, "reclaimed after 1 s idle")
            let kept = try await server.instances("kept")
            #expect(kept.count == 1 && kept.first?["provisioned"] as? Bool == true, "provisioned instances stay warm")

            // A provisioned instance that dies is replaced.
            let pid = try #require(kept.first?["pid"] as? Int)
            kill(pid_t(pid), SIGKILL)
            let deadline = ContinuousClock.now + .seconds(10)
            var replaced: [[String: Any]] = []
            while ContinuousClock.now < deadline {
                replaced = try await server.instances("kept")
                if let id = replaced.first?["id"] as? String, id != kept.first?["id"] as? String { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(replaced.count == 1)
            #expect(replaced.first?["id"] as? String != kept.first?["id"] as? String)
        }
    }

    @Test func redeployReplacesTheInstancesAndDeleteRemovesTheFunction() async throws {
        try await withServer { server in
            _ = try await server.deploy("evolving", image: "hello-runtime", ["type": "event"])
            #expect(try await server.invoke("evolving").returned["count"] as? Int == 1)
            #expect(try await server.invoke("evolving").returned["count"] as? Int == 2)
            let before = try await server.instances("evolving").compactMap { $0["id"] as? String }
            _ = try await server.deploy("evolving", image: "hello-runtime", ["type": "event", "env": ["GREETING": "v2"]])
            #expect(try await server.invoke("evolving").returned["count"] as? Int == 1, "a new instance")
            let after = try await server.instances("evolving").compactMap { $0["id"] as? String }
            #expect(Set(before).isDisjoint(with: after))
            let info = try await server.call(.GET, "/functions/evolving").json
            #expect((info["spec"] as? [String: Any])?["env"] as? [String: String] == ["GREETING": "v2"])

            #expect(try await server.call(.DELETE, "/functions/evolving").status == 204)
            #expect(try await server.call(.GET, "/functions/evolving").status == 404)
            #expect(try await server.invoke("evolving").status == 404)
            #expect(try await server.instances("evolving").isEmpty)
            #expect(try await server.call(.DELETE, "/functions/evolving").status == 404)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: "\(server.stateDir)/instances")
            #expect(leftovers.isEmpty, "the instances' rootfs were removed: \(leftovers)")
        }
    }
}

/// The value of the sample named `series` (name and labels) in Prometheus text.
func metric(_ text: String, _ series: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
}

/// Runs `body` against a server started for it, and stops the server (its instances with it) afterwards.
func withServer(
    options: FunctionService.Options = TestServer.fast, _ body: (TestServer) async throws -> Void
) async throws {
    let server = try await TestServer.start(options: options)
    do { try await body(server) } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
