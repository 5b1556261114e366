import Foundation
import NIOHTTP1
import TestSupport
import Testing

@testable import Bootstrap
@testable import Executor
@testable import Service

/// What faasbox holds on a function's behalf is bounded (issue 17), tried as a hostile function would.
@Suite struct BoundsTests {
    let scratch = TestPaths.temporaryDirectory("bounds")

    func jobImage(_ name: String, script: String) throws -> String {
        let path = "\(scratch)/images/\(name).tar"
        try FileManager.default.createDirectory(atPath: "\(scratch)/images", withIntermediateDirectories: true)
        try OCIArchiveBuilder(layers: [
            .init(try OCIArchiveBuilder.busyboxEntries() + [.file("scf_bootstrap", "#!/bin/sh\n\(script)\n", mode: 0o755)])
        ]).write(to: path)
        return path
    }

    var options: FunctionService.Options {
        var options = TestServer.fast
        options.host = HostPolicy(imageRoots: [TestPaths.imagesDirectory, "\(scratch)/images"])
        return options
    }

    /// A job's event at the limit reaches the job whole (execve's own limit counts the variable's name too); one
    /// byte more is refused with 406 at the door, never tried and dead-lettered.
    @Test func aJobEventAtTheLimitRunsAndOneByteMoreIs406() async throws {
        let image = try jobImage("event-size", script: "echo \"size=${#SCF_CUSTOM_CONTAINER_EVENT}\"")
        try await withServer(options: options) { server in
            let spec = String(
                decoding: try JSONSerialization.data(withJSONObject: ["image": image, "type": "job"]), as: UTF8.self)
            #expect(try await server.call(.PUT, "/functions/sized", body: spec).status == 200)
            let limit = Event.limit(kind: .job, delivery: .sync)
            let event = "[\"" + String(repeating: "x", count: limit - 4) + "\"]"
            let answer = try await server.invoke("sized", event, tail: true)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            #expect((answer.json["Log"] as? String ?? "").contains("size=\(limit)"), "\(answer.text.prefix(300))")
            let over = try await server.invoke("sized", "[\"" + String(repeating: "x", count: limit - 3) + "\"]")
            #expect(over.status == 406, "\(over.text.prefix(300))")
        }
    }

    /// Oversized bodies get the documented JSON 406 (not a bare 413), on the socket and on TCP, and change nothing.
    @Test func oversizedBodiesAreAJSON406() async throws {
        try await withServer(options: options) { server in
            let hugeSpec = #"{"image": "x", "env": {"A": ""# + String(repeating: "x", count: 2 << 20) + #""}}"#
            let deploy = try await server.call(.PUT, "/functions/big", body: hugeSpec)
            #expect(deploy.status == 406, "\(deploy.status) \(deploy.text.prefix(200))")
            #expect(deploy.headers["Content-Type"].first == "application/json")
            #expect(deploy.text.contains("406") || deploy.json["Error"] != nil, "\(deploy.text.prefix(200))")
            #expect(try await server.deploy("fn", image: "hello-event", ["type": "event"]).status == 200)
            let event = "[\"" + String(repeating: "x", count: 7 << 20) + "\"]"
            for answer in [
                try await server.invoke("fn", event),
                try await server.callTCP(.POST, "/functions/fn/invocations", body: Array(event.utf8), signing: server.signed),
            ] {
                #expect(answer.status == 406, "\(answer.status) \(answer.text.prefix(200))")
                #expect(answer.headers["Content-Type"].first == "application/json")
            }
            #expect(try await server.call(.GET, "/functions").array.count == 1, "nothing was deployed by the refused call")
        }
    }

    /// A 64 MB line of NUL bytes with no newline, asked for with Tail: the service answered (it once crashed
    /// on the size of its JSON answer), the log holds the line cut at the bound, Tail is its last 4 KB.
    @Test func aHugeLineWithoutANewlineIsCutAndTailIsTheLast4KB() async throws {
        let image = try jobImage("huge-line", script: "echo before; head -c 67108864 /dev/zero; echo; echo after")
        try await withServer(options: options) { server in
            let spec = String(
                decoding: try JSONSerialization.data(
                    withJSONObject: ["image": image, "type": "job", "timeout": 60] as [String: Any]), as: UTF8.self)
            #expect(try await server.call(.PUT, "/functions/huge", body: spec).status == 200)
            let answer = try await server.invoke("huge", tail: true)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            let log = try #require(answer.json["Log"] as? String)
            #expect(log.utf8.count <= SCFContract.tailLogBytes, "\(log.utf8.count) bytes")
            #expect(log.contains("after") && log.contains("REPORT RequestId"), "the end of the log: \(log.suffix(300))")
            #expect(answer.text.utf8.count < 64 << 10, "the answer is small: \(answer.text.utf8.count) bytes")
            let requestID = try #require(answer.json["FunctionRequestId"] as? String)
            var stored = try await server.call(.GET, "/functions/huge/logs?requestId=\(requestID)")
            for _ in 0..<50 where !stored.text.contains("REPORT") {  // logs are written in batches
                try await Task.sleep(for: .milliseconds(100))
                stored = try await server.call(.GET, "/functions/huge/logs?requestId=\(requestID)")
            }
            #expect(stored.status == 200)
            #expect(stored.text.contains("line cut at \(SCFContract.maxOutputLineBytes) bytes"), "\(stored.text.prefix(200))")
            // 256 KB of NUL bytes, each stored as U+FFFD (3 bytes; a NUL would end the text in the store).
            #expect(stored.text.contains("\u{FFFD}\u{FFFD}"))
            #expect(stored.text.utf8.count < 4 * SCFContract.maxOutputLineBytes, "stored: \(stored.text.utf8.count) bytes")
        }
    }
}
