import NIOPosix
import Synchronization
import SystemSupport
import TestSupport
import Testing

@testable import Bootstrap

#if canImport(Glibc)
    import Glibc
#endif

/// The runtime API server's own bounds, on a real loopback socket: a hostile runtime cannot make faasbox hold
/// more than a few connections, nor keep one that never sends a whole request.
@Suite struct RuntimeAPIBoundsTests {
    /// Sends `request` and returns the first bytes of the answer ("" when the server closed instead).
    private func exchange(_ socket: OwnedFileDescriptor, _ request: String) async -> String {
        await runBlocking { () -> String in
            TestSocket.send(socket, request)
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = buffer.withUnsafeMutableBytes { recv(socket.rawValue, $0.baseAddress, $0.count, 0) }
            return String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self)
        }
    }

    @Test func connectionsPastTheCapAreClosedAndSilentOnesTimeOut() async throws {
        let notes = Mutex<[String]>([])
        let api = RuntimeAPI { message in notes.withLock { $0.append(message) } }
        let (listener, port) = try LoopbackSocket.listen(port: 0)
        let timeout = Duration.seconds(8)  // long enough for the steps before it, on a loaded machine
        let server = try await RuntimeAPIServer.start(
            api, listener: listener, group: MultiThreadedEventLoopGroup.singleton, maxConnections: 4,
            requestTimeout: .seconds(8))
        // Four connections, each answered once (so each is surely open and counted), then silent.
        let probe = "GET /runtime/nothing HTTP/1.1\r\nHost: x\r\n\r\n"
        let clock = ContinuousClock()
        let first = clock.now
        var held: [OwnedFileDescriptor] = []
        for _ in 0..<4 {
            let socket = try TestSocket.connect(port: port)
            #expect(await exchange(socket, probe).hasPrefix("HTTP/1.1 "), "answered and kept open")
            held.append(socket)
        }
        let start = clock.now
        for _ in 0..<3 {
            let extra = try TestSocket.connect(port: port)
            #expect(await exchange(extra, probe).isEmpty, "past the cap: closed unanswered")
        }
        #expect(clock.now - start < timeout * 0.8, "closed at once, not at the request timeout")
        #expect(
            notes.withLock { $0 }.filter { $0.contains("connections are open") }.count == 1,
            "noted once: \(notes.withLock { $0 })")
        // One of the held ones sends half a request head; all four are closed by the request timeout.
        TestSocket.send(held[0], "GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n")
        for socket in held { #expect(await TestSocket.closedByServer(socket), "closed by the request timeout") }
        #expect(clock.now - first >= timeout * 0.95, "not before it")
        // Then the slots are free again (once the closes are counted, on their own event loops).
        var answer = ""
        for _ in 0..<40 where answer.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            answer = await exchange(try TestSocket.connect(port: port), probe)
        }
        #expect(answer.hasPrefix("HTTP/1.1 "), "answered again: \(answer)")
        await server.stop()
    }
}
