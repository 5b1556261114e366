import NIOPosix
import Synchronization
import SystemSupport
import Testing

@testable import Bootstrap

#if canImport(Glibc)
    import Glibc
#endif

/// The runtime API server's own bounds, on a real loopback socket: a hostile runtime cannot make faasbox hold
/// more than a few connections, nor keep one that never sends a whole request.
@Suite struct RuntimeAPIBoundsTests {
    private func connect(_ port: UInt16) throws -> OwnedFileDescriptor {
        let socket = OwnedFileDescriptor(rawValue: Glibc.socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0))
        try LoopbackSocket.connect(socket, port: port)
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    /// Whether the server closed `socket` (EOF or reset) rather than leaving it open (a receive timeout). The
    /// wait is off the cooperative pool, which the other tests share.
    private func closedByServer(_ socket: OwnedFileDescriptor) async -> Bool {
        await runBlocking { () -> Bool in
            var byte: UInt8 = 0
            let n = recv(socket.rawValue, &byte, 1, 0)
            return n == 0 || (n < 0 && errno == ECONNRESET)
        }
    }

    /// Sends `request` and returns the first bytes of the answer ("" when the server closed instead).
    private func exchange(_ socket: OwnedFileDescriptor, _ request: String) async -> String {
        await runBlocking { () -> String in
            let bytes = Array(request.utf8)
            _ = bytes.withUnsafeBytes { send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
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
            let socket = try connect(port)
            #expect(await exchange(socket, probe).hasPrefix("HTTP/1.1 "), "answered and kept open")
            held.append(socket)
        }
        let start = clock.now
        for _ in 0..<3 {
            let extra = try connect(port)
            #expect(await exchange(extra, probe).isEmpty, "past the cap: closed unanswered")
        }
        #expect(clock.now - start < timeout * 0.8, "closed at once, not at the request timeout")
        #expect(
            notes.withLock { $0 }.filter { $0.contains("connections are open") }.count == 1,
            "noted once: \(notes.withLock { $0 })")
        // One of the held ones sends half a request head; all four are closed by the request timeout.
        let partial = Array("GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n".utf8)
        _ = partial.withUnsafeBytes { send(held[0].rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        for socket in held { #expect(await closedByServer(socket), "closed by the request timeout") }
        #expect(clock.now - first >= timeout * 0.95, "not before it")
        // Then the slots are free again (once the closes are counted, on their own event loops).
        var answer = ""
        for _ in 0..<40 where answer.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            answer = await exchange(try connect(port), probe)
        }
        #expect(answer.hasPrefix("HTTP/1.1 "), "answered again: \(answer)")
        await server.stop()
    }
}
