import Foundation
import NIOHTTP1
import Sandbox
import SystemSupport
import TestSupport
import Testing

@testable import Bootstrap
@testable import Executor
@testable import Service

#if canImport(Glibc)
    import Glibc
#endif

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

    /// The log store's caps: past a function's cap its oldest logs go (and are counted), the total is capped
    /// across functions, an entry over its bound keeps its START and REPORT, and deleting a function frees its logs.
    @Test func theLogStoreIsCappedPerFunctionAndInAllAndEntriesAreBounded() async throws {
        var options = self.options
        options.logs.entryBytes = 64 << 10
        options.logs.functionBytes = 200 << 10
        options.logs.totalBytes = 300 << 10
        let image = try jobImage(
            "chatty",
            script:
                "i=0; while [ $i -lt 1500 ]; do echo \"line $i of a chatty job, padded to about a hundred bytes.......................\"; i=$((i+1)); done"
        )
        try await withServer(options: options) { server in
            for name in ["chatty-a", "chatty-b"] {
                let spec = String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: ["image": image, "type": "job", "timeout": 30] as [String: Any]), as: UTF8.self)
                #expect(try await server.call(.PUT, "/functions/\(name)", body: spec).status == 200)
            }
            var ids: [String] = []
            for round in 0..<6 {
                for name in ["chatty-a", "chatty-b"] {
                    let answer = try await server.invoke(name)
                    #expect(answer.status == 200, "round \(round): \(answer.text.prefix(200))")
                    if name == "chatty-a" { ids.append(answer.json["FunctionRequestId"] as? String ?? "") }
                }
            }
            let logsA = try await server.call(.GET, "/functions/chatty-a/logs?limit=1000").array.compactMap {
                ($0 as? [String: Any])?["text"] as? String
            }
            let logsB = try await server.call(.GET, "/functions/chatty-b/logs?limit=1000").array.compactMap {
                ($0 as? [String: Any])?["text"] as? String
            }
            let bytes = { (logs: [String]) in logs.reduce(0) { $0 + $1.utf8.count } }
            #expect(bytes(logsA) <= 200 << 10 && bytes(logsB) <= 200 << 10, "\(bytes(logsA)) \(bytes(logsB))")
            #expect(bytes(logsA) + bytes(logsB) <= 300 << 10, "the total cap")
            #expect(logsA.count >= 1 && logsA.count < 6, "the oldest went: \(logsA.count) kept")
            let newest = try #require(logsA.last)
            #expect(newest.contains(ids.last!), "the newest is kept")
            #expect(newest.hasPrefix("START RequestId:") && newest.contains("REPORT RequestId:"), "both ends kept")
            #expect(newest.contains("bytes of this log dropped]"), "over 64 KB: cut in the middle")
            #expect(newest.utf8.count <= 64 << 10)
            let metrics = try await server.call(.GET, "/metrics").text
            #expect(
                metrics.contains(#"faasbox_logs_dropped_total{function="chatty-a",reason="function-cap"}"#)
                    || metrics.contains(#"faasbox_logs_dropped_total{function="chatty-a",reason="total-cap"}"#),
                "\(metrics.split(separator: "\n").filter { $0.contains("logs_dropped") })")
            // Deleting a function deletes its logs.
            #expect(try await server.call(.DELETE, "/functions/chatty-a").status == 204)
            let spec = String(
                decoding: try JSONSerialization.data(withJSONObject: ["image": image, "type": "job"]), as: UTF8.self)
            #expect(try await server.call(.PUT, "/functions/chatty-a", body: spec).status == 200)
            #expect(
                try await server.call(.GET, "/functions/chatty-a/logs?limit=1000").array.isEmpty,
                "the old function's logs are gone")
        }
    }

    /// A full state filesystem: below the reserve logs pause (said in /healthz, counted), cold starts go on,
    /// and logs resume when space comes back. The state dir is a small tmpfs of the test's own.
    @Test func belowTheFreeSpaceReserveLogsPauseAndColdStartsGoOn() async throws {
        let state = "\(scratch)/small-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let mounted = try TestPaths.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", state])
        #expect(mounted.status == 0, "\(mounted.output)")
        defer { _ = try? TestPaths.run("/bin/umount", ["-l", state]) }
        let image = try jobImage("quiet", script: "echo hello from a job")
        let server = try await TestServer.start(stateDir: state, options: options)
        do {
            let spec = String(
                decoding: try JSONSerialization.data(withJSONObject: ["image": image, "type": "job"]), as: UTF8.self)
            #expect(try await server.call(.PUT, "/functions/quiet", body: spec).status == 200)
            #expect(try await server.invoke("quiet").status == 200)
            // Fill the filesystem to its last byte: a cold start writes nothing there (the instance's directory
            // is a tmpfs of its own).
            // (What is free can shrink between the look and the fallocate as the database writes: then a
            // little less, and a second file takes what is left.)
            let filler = "\(state)/filler"
            for index in 0..<6 {
                let free = try #require(FileSystem.usage(of: state)).free
                if free < 64 << 10 { break }
                let size = index % 2 == 0 ? free : free - (256 << 10)
                _ = try TestPaths.run("/usr/bin/fallocate", ["-l", "\(size)", filler + "\(index)"])
            }
            let left = try #require(FileSystem.usage(of: state)).free
            #expect(left < 64 << 10, "full: \(left) bytes left")
            var health = try await server.call(.GET, "/healthz")
            for _ in 0..<50 where health.json["logs"] == nil {
                try await Task.sleep(for: .milliseconds(100))
                health = try await server.call(.GET, "/healthz")
            }
            #expect((health.json["logs"] as? String)?.hasPrefix("paused:") == true, "\(health.text)")
            #expect(health.json["status"] as? String == "ok")
            let during = try await server.invoke("quiet", tail: true)
            #expect(during.status == 200, "a cold start still works: \(during.text.prefix(300))")
            #expect((during.json["Log"] as? String ?? "").contains("hello from a job"), "Tail still answers")
            let metrics = try await server.call(.GET, "/metrics").text
            #expect(metrics.contains(#"faasbox_logs_dropped_total{function="quiet",reason="disk-reserve"} "#), "counted")
            #expect(metrics.contains("faasbox_state_fs_free_bytes"))
            // Space back: logs resume.
            for index in 0..<6 { unlink(filler + "\(index)") }
            for _ in 0..<50 where health.json["logs"] != nil {
                try await Task.sleep(for: .milliseconds(100))
                health = try await server.call(.GET, "/healthz")
            }
            #expect(health.json["logs"] == nil, "\(health.text)")
            let after = try await server.invoke("quiet")
            let id = try #require(after.json["FunctionRequestId"] as? String)
            var stored: [Any] = []
            for _ in 0..<50 where stored.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                stored = try await server.call(.GET, "/functions/quiet/logs?requestId=\(id)").array
            }
            #expect(stored.count == 1)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// The listener's own bounds: past its connection cap a request gets a JSON 503; an idle connection, a
    /// half-sent head and a stalled body are closed at their timeouts; a request being served is not cut.
    @Test func theListenerCapsConnectionsAndCutsSlowClients() async throws {
        var limits = ListenerLimits()
        limits.maxConnections = 10
        limits.idleTimeout = .seconds(1)
        limits.bodyTimeout = .seconds(1)
        let image = try jobImage("slow", script: "sleep 2; echo done")
        let server = try await TestServer.start(options: options, limits: limits)
        do {
            let spec = String(
                decoding: try JSONSerialization.data(
                    withJSONObject: ["image": image, "type": "job", "timeout": 10] as [String: Any]), as: UTF8.self)
            #expect(try await server.call(.PUT, "/functions/slow", body: spec).status == 200)
            // A request that takes longer than the idle timeout is served whole.
            #expect(try await server.invoke("slow").status == 200, "served past the idle timeout")

            let port = UInt16(server.port)
            var idle: [OwnedFileDescriptor] = []
            for _ in 0..<10 { idle.append(try TestSocket.connect(port: port)) }
            try await Task.sleep(for: .milliseconds(200))
            let over = try TestSocket.connect(port: port)
            let refused = await Self.exchange(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
            #expect(refused.contains("TooManyConnections") && refused.contains("application/json"))
            // The idle ones are closed at the idle timeout; then there is room again.
            for socket in idle { #expect(await TestSocket.closedByServer(socket), "idle: closed") }
            var health = ""
            for _ in 0..<20 where !health.hasPrefix("HTTP/1.1 200") {
                try await Task.sleep(for: .milliseconds(100))
                health = await Self.exchange(try TestSocket.connect(port: port), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            }
            #expect(health.hasPrefix("HTTP/1.1 200"), "\(health)")
            // Half a head, and a body that stops: both closed.
            let clock = ContinuousClock()
            let start = clock.now
            let slowHead = try TestSocket.connect(port: port)
            TestSocket.send(slowHead, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
            let slowBody = try TestSocket.connect(unix: server.socket)  // no signature to check there: the body is awaited
            TestSocket.send(slowBody, "PUT /functions/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"image\"")
            #expect(await TestSocket.closedByServer(slowHead), "a head never finished")
            #expect(await TestSocket.closedByServer(slowBody), "a body that stopped")
            #expect(clock.now - start < .seconds(4))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// Sends `request`, then reads until the server closes or 5 s pass (off the cooperative pool).
    static func exchange(_ socket: OwnedFileDescriptor, _ request: String) async -> String {
        TestSocket.send(socket, request)
        return await runBlocking { () -> String in
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(socket.rawValue, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                out += buffer[..<n]
                if let text = String(bytes: out, encoding: .utf8), text.contains("\r\n\r\n"),
                    let length = text.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") })
                        .flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }),
                    let body = text.range(of: "\r\n\r\n"), text[body.upperBound...].utf8.count >= length
                {
                    break
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// CPU goes with memory (SCF's rule): an instance's cgroup weight is in proportion to its memory, and an
    /// optional quota in cores is its cpu.max.
    @Test func anInstancesCPUShareFollowsItsMemoryAndItsQuotaIsTheFunctions() async throws {
        try await withServer(options: options) { server in
            #expect(
                try await server.deploy("cpu", image: "hello-web", ["memorySize": 256, "cpus": 0.5, "provisioned": 1]).status
                    == 200)
            let id = try #require(try await server.instances("cpu").first?["id"] as? String)
            let directories = try #require(CgroupHost.current.leftoverInstance(id)).directories
            let read = { (file: String) in
                directories.compactMap { try? String(contentsOfFile: "\($0)/\(file)", encoding: .utf8) }.first?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let weight = SCFContract.cpuWeight(memoryMB: 256)
            #expect(weight == 25)
            if let shares = read("cpu.shares") {
                #expect(shares == "\(weight * 1024 / 100)")
                #expect(read("cpu.cfs_quota_us") == "50000")
            } else {
                #expect(read("cpu.weight") == "\(weight)")
                #expect(read("cpu.max") == "50000 100000")
            }
            let refused = try await server.deploy("cpu2", image: "hello-web", ["cpus": 100])
            #expect(refused.status == 400 && refused.text.contains("cpus"), "\(refused.text)")
        }
    }

    /// Backpressure: a function answers 256 MB to a caller that does not read; serve stops reading from the
    /// function while the caller's socket is full, so its memory does not grow with the response (it grew by
    /// the whole response before). Then the caller reads it all, intact in length.
    @Test func aResponseToACallerThatDoesNotReadIsHeldBackNotBuffered() async throws {
        let size = 256 << 20
        let path = "\(scratch)/images/big-answer.tar"
        try FileManager.default.createDirectory(atPath: "\(scratch)/images", withIntermediateDirectories: true)
        let answer = """
            #!/bin/sh
            while read -r line; do [ -z "$(printf %s "$line" | tr -d '\\r')" ] && break; done
            printf 'HTTP/1.1 200 OK\\r\\nContent-Length: \(size)\\r\\nConnection: close\\r\\n\\r\\n'
            head -c \(size) /dev/zero
            """
        try OCIArchiveBuilder(layers: [
            .init(
                try OCIArchiveBuilder.busyboxEntries() + [
                    .dir("usr", mode: 0o755), .dir("usr/lib", mode: 0o755), .file("usr/lib/answer", answer + "\n", mode: 0o755),
                    .file("scf_bootstrap", "#!/bin/sh\nexec nc -ll -p 9000 -e /usr/lib/answer\n", mode: 0o755),
                ])
        ]).write(to: path)
        let server = try TestServer.spawn(
            stateDir: TestPaths.temporaryDirectory("backpressure"), extraArguments: ["--image-root", "\(scratch)/images"])
        do {
            let spec = String(
                decoding: try JSONSerialization.data(withJSONObject: ["image": path, "timeout": 120] as [String: Any]),
                as: UTF8.self)
            let deployed = try await server.call(.PUT, "/functions/big", body: spec)
            #expect(deployed.status == 200, "\(deployed.text)")
            let pid = try #require(server.process?.processIdentifier)
            let rss = { () -> Int in
                let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) << 10
            }
            let before = rss()
            let caller = try TestSocket.connect(unix: server.socket)
            var small: CInt = 64 << 10
            setsockopt(caller.rawValue, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<CInt>.size))
            TestSocket.send(caller, "GET /web/big/ HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .seconds(3))  // the function writes as fast as it is read
            let during = rss()
            #expect(during - before < 64 << 20, "serve grew by \(during - before) bytes while the caller did not read")
            // Now the caller reads it all.
            let total = await runBlocking { () -> Int in
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                var got = 0
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(caller.rawValue, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    got += n
                }
                return got
            }
            #expect(total > size && total < size + 4096, "the whole response came through: \(total) bytes")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// A failed deploy leaves nothing in the store: a 20 MB tar that is no OCI image (its entries were stored as
    /// blobs while it was read) is refused, and the store is as it was.
    @Test func aFailedDeployLeavesNothingInTheStore() async throws {
        let junk = "\(scratch)/images/junk.tar"
        let files = "\(scratch)/junk"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        for i in 0..<4 {
            let bytes = try #require(try random.read(upToCount: 5 << 20))
            #expect(FileManager.default.createFile(atPath: "\(files)/f\(i)", contents: bytes))
        }
        try FileManager.default.createDirectory(atPath: "\(scratch)/images", withIntermediateDirectories: true)
        #expect(try TestPaths.run("/bin/tar", ["-cf", junk, "-C", files, "."]).status == 0)
        try await withServer(options: options) { server in
            func storeBytes() -> Int {
                var total = 0
                for dir in ["blobs", "layers"] {
                    let root = "\(server.stateDir)/\(dir)"
                    for file in (try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? [] {
                        total += ((try? FileManager.default.attributesOfItem(atPath: "\(root)/\(file)"))?[.size] as? Int) ?? 0
                    }
                }
                return total
            }
            let before = storeBytes()
            let spec = String(decoding: try JSONSerialization.data(withJSONObject: ["image": junk]), as: UTF8.self)
            let answer = try await server.call(.PUT, "/functions/junk", body: spec)
            #expect(answer.status == 400, "\(answer.text)")
            #expect(storeBytes() - before < 1 << 20, "the store grew by \(storeBytes() - before) bytes")
        }
    }
}
