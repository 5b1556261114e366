import Bootstrap
import Foundation
import ImageRuntime
import Synchronization
import TestSupport
import Testing

/// A web function's response passes through as it is written: server-sent events and chunked bodies are not
/// held back until the function finishes.
@Suite struct StreamingTests {
    // Each reads the request's head first: a response before the request is sent is refused by the client, and
    // a close with unread bytes resets the connection.
    static let sse =
        #"awk '/^\r?$/ { exit }'; printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n'; printf 'data: one\n\n'; sleep 3; printf 'data: two\n\n'"#
    static let chunked =
        #"awk '/^\r?$/ { exit }'; printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n'; sleep 3; printf '6\r\nsecond\r\n0\r\n\r\n'"#

    @Test(arguments: [(sse, "data: one\n\n", "data: one\n\ndata: two\n\n"), (chunked, "first", "firstsecond")])
    func theFirstPieceArrivesBeforeTheFunctionHasFinished(script: String, first: String, whole: String) async throws {
        var config = FunctionConfig(name: "stream")
        config.stopGrace = .zero
        config.command = [
            "/bin/sh", "-c", "exec nc -ll -p 9000 -e /bin/sh -c \"\(script.replacingOccurrences(of: "\"", with: "\\\""))\"",
        ]
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: try ImageStore(root: TestPaths.temporaryDirectory("stream")),
            config: config)
        let clock = ContinuousClock()
        let pieces = Mutex<[(ContinuousClock.Instant, String)]>([])
        let status = Mutex(0)
        try await instance.invokeStreaming(
            HTTPRequest(method: "GET", target: "/events"), requestID: "s", timeout: .seconds(10),
            onHead: { head in status.withLock { $0 = head.status } },
            onBody: { piece in pieces.withLock { $0.append((clock.now, String(decoding: piece, as: UTF8.self))) } })
        let finished = clock.now
        await instance.stop()
        let received = pieces.withLock { $0 }
        #expect(status.withLock { $0 } == 200)
        #expect(received.map(\.1).joined() == whole)
        let firstArrival = try #require(received.first { $0.1.contains(first) }?.0)
        #expect(finished - firstArrival > .milliseconds(1500), "the first piece waited for the rest: \(received)")
    }

    @Test func aRequestOverSixMegabytesIsRefusedWith406BeforeTheFunctionSeesIt() async throws {
        var config = FunctionConfig(name: "big")
        config.stopGrace = .zero
        config.command = ["/bin/sh", "-c", "exec nc -ll -p 9000 -e /bin/sh -c 'echo seen >&2; cat >/dev/null'"]
        let instance = try await FunctionInstance.coldStart(
            image: TestPaths.sampleImage("hello-web"), store: try ImageStore(root: TestPaths.temporaryDirectory("stream")),
            config: config)
        let request = HTTPRequest(method: "POST", target: "/", body: [UInt8](repeating: 0x61, count: (6 << 20) + 1))
        // The readiness probe's connection reached it once already: wait for that line.
        for _ in 0..<200 where !instance.output.snapshot.contains(where: { $0.text == "seen" }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let seenBefore = instance.output.snapshot.filter { $0.text == "seen" }.count
        #expect(seenBefore == 1)
        await #expect {
            _ = try await instance.invoke(request, requestID: "big", timeout: .seconds(5))
        } throws: { error in
            (error as? BootstrapError)?.code == .requestTooLarge
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(instance.output.snapshot.filter { $0.text == "seen" }.count == seenBefore, "the function was not touched")
        await instance.stop()
    }
}
