import Bootstrap
import Foundation
import Testing

@testable import Executor
@testable import Service

#if canImport(Glibc)
    import Glibc
#endif

/// The connection-level behaviour of `/web/` requests, which `WebPassthroughHandler` answers in front of the
/// API's router: over one raw connection, in the order sent, with HTTP/1.1 keep-alive and close as the caller
/// asks, and the API's JSON errors.
@Suite(.serialized) struct WebPassthroughTests {
    /// Pipelined, each request reaches the service the moment the previous response is written — before that
    /// invocation has given its instance and slot back: the next one waits for them (no 432 for a limit of
    /// one, no second instance for a higher one).
    @Test(arguments: [1, 10]) func pipelinedWebAndAPIRequestsAreAnsweredInOrderOnOneConnection(concurrency: Int)
        async throws
    {
        try await withServer { server in
            _ = try await server.deploy("ka", image: "hello-keepalive", ["concurrency": concurrency])
            let requests = [
                "GET /web/ka/first?x=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                "POST /web/ka/second HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /functions HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /web/ka/third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            ]
            let answer = try RawConnection.exchange(socket: server.socket, requests.joined())
            let responses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst()
            #expect(responses.count == 5, "\(answer)")
            let expected = [
                "path: /first?x=1", "method: POST\npath: /second", #""status":"ok""#, #"["ka"]"#, "path: /third",
            ]
            for (response, text) in zip(responses, expected) {
                #expect(response.hasPrefix("200 "), "\(response)")
                #expect(response.contains(text), "expected \(text) in \(response)")
            }
            #expect(responses.last?.lowercased().contains("connection: close") == true, "the last one says it closes")
            #expect(responses.last?.contains("served: 3\nconnection: 3") == true, "one instance, one connection: \(answer)")
        }
    }

    /// The caller's response ends the moment the function's does, before the invocation's bookkeeping frees
    /// its slot: a client that sends its next request at once must not be refused for the limit of one.
    @Test func backToBackCallsOnAConcurrencyOfOneAreNeverRefused() async throws {
        try await withServer { server in
            _ = try await server.deploy("one", image: "hello-keepalive", ["concurrency": 1])
            var statuses: [Int: Int] = [:]
            for i in 0..<300 {
                let answer = try await server.call(.GET, "/web/one/call\(i)")
                statuses[answer.status, default: 0] += 1
                if answer.status == 200 { #expect(answer.text.contains("path: /call\(i)\n")) }
            }
            #expect(statuses == [200: 300], "\(statuses)")

            // With room for more, the next call still reuses the instance that just answered (it is about to be
            // free) rather than cold-starting another one.
            _ = try await server.deploy("many", image: "hello-keepalive", ["concurrency": 10])
            var last = ""
            for i in 0..<200 { last = try await server.call(.GET, "/web/many/call\(i)").text }
            #expect(last.contains("served: 200\n"), "one process served them all: \(last)")
            #expect(try await server.instances("many").count == 1)
        }
    }

    @Test func aBodyThatWaitsFor100ContinueIsAskedFor() async throws {
        try await withServer { server in
            _ = try await server.deploy("ka", image: "hello-keepalive")
            let answer = try RawConnection.exchange(
                socket: server.socket,
                "POST /web/ka/up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                    + "Connection: close\r\n\r\nhello")
            #expect(answer.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), "\(answer)")
            #expect(answer.contains("method: POST\npath: /up"), "\(answer)")
        }
    }

    @Test func http10AndConnectionCloseEndTheConnectionAfterTheAnswer() async throws {
        try await withServer { server in
            _ = try await server.deploy("ka", image: "hello-keepalive")
            // RawConnection.exchange reads until the server closes: a server that kept these open would time out.
            let old = try RawConnection.exchange(socket: server.socket, "GET /web/ka/old HTTP/1.0\r\n\r\n")
            #expect(old.hasPrefix("HTTP/1.0 200"), "\(old)")
            #expect(old.contains("path: /old"))
            let closing = try RawConnection.exchange(
                socket: server.socket, "GET /web/ka/bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(closing.hasPrefix("HTTP/1.1 200") && closing.contains("path: /bye"), "\(closing)")
        }
    }

    /// What faasbox cannot relay is a bad gateway with its reason (502), at once, and the server keeps serving:
    /// a `101 Switching Protocols` (a WebSocket handshake) and a response its HTTP/1.1 parser refuses.
    @Test(arguments: [
        (
            "HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n",
            "101 Switching Protocols"
        ),
        ("HTTP/1.1 200 OK\\r\\nNo colon here\\r\\n\\r\\n", "invalid character in header"),
    ])
    func anAnswerThatCannotBeRelayedIsABadGateway(answer: String, reason: String) async throws {
        try await withServer { server in
            // Each connection: read the request line, answer `answer`, then hold the connection open.
            let handler = "read l; printf '\(answer)'; sleep 30"
            _ = try await server.deploy(
                "odd", image: "hello-web", ["command": ["/bin/sh", "-c", "exec nc -ll -p 9000 -e /bin/sh -c \"\(handler)\""]])
            _ = try await server.deploy("ka", image: "hello-keepalive")
            let begin = ContinuousClock.now
            let answered = try await server.call(.GET, "/web/odd/chat")
            #expect(ContinuousClock.now - begin < .seconds(5), "at once, not after the function gives up")
            #expect(answered.status == 502, "\(answered.status) \(answered.text)")
            #expect(answered.text.contains(#""Code":"badGateway""#) && answered.text.contains(reason), "\(answered.text)")
            let after = try await server.call(.GET, "/web/ka/still")
            #expect(after.status == 200 && after.text.contains("path: /still"))
        }
    }

    @Test func errorsAreTheAPIsJSONAndTheServerKeepsServing() async throws {
        try await withServer { server in
            _ = try await server.deploy("ka", image: "hello-keepalive")
            let missing = try RawConnection.exchange(
                socket: server.socket, "GET /web/nosuch/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(missing.hasPrefix("HTTP/1.1 404"), "\(missing)")
            #expect(missing.contains(#""Code":"ResourceNotFound.Function""#), "\(missing)")

            // Past 6 MB the request is refused at once with the contract's 406, and the connection closed.
            let size = SCFContract.maxSyncPayloadBytes + 1
            let big =
                "POST /web/ka/upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n"
                + String(repeating: "x", count: size)
            let refused = try RawConnection.exchange(socket: server.socket, big)
            #expect(refused.hasPrefix("HTTP/1.1 406"), "\(refused.prefix(300))")
            #expect(refused.contains(#""Code":"requestTooLarge""#), "\(refused.prefix(300))")
            #expect(refused.lowercased().contains("connection: close"), "\(refused.prefix(300))")

            // Declared too large, the request is refused before its body is read; the rest of it is dropped.
            let declared = try RawConnection.exchange(
                socket: server.socket,
                "POST /web/ka/upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n"
                    + String(repeating: "y", count: 100_000))
            #expect(declared.hasPrefix("HTTP/1.1 406") && declared.contains(#""Code":"requestTooLarge""#), "\(declared)")

            let noName = try RawConnection.exchange(
                socket: server.socket, "GET /web/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(noName.hasPrefix("HTTP/1.1 404"), "no function named: the router's 404 \(noName)")
            let after = try await server.call(.GET, "/web/ka/still")
            #expect(after.status == 200 && after.text.contains("path: /still"))
        }
    }
}

/// A plain TCP client: sends bytes, reads until the server closes the connection (or 30 s pass).
enum RawConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func exchange(port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: errno \(errno)") }
        return try exchange(fd, request)
    }

    /// The same over the unix socket at `socket`.
    static func exchange(socket path: String, _ request: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect \(path): errno \(errno)") }
        return try exchange(fd, request)
    }

    private static func exchange(_ fd: CInt, _ request: String) throws -> String {
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may refuse (and close) before it has read everything
            sent += n
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET && !answer.isEmpty { break }
                throw Failure(description: "recv: errno \(errno) after \(answer.count) bytes")
            }
            answer += chunk[..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
