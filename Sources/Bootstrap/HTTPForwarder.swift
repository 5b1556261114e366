import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// An HTTP request to a function instance, and its answer.
public struct HTTPRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// Parses `METHOD /path?query` as the CLI takes it.
    public init(parsing line: String) throws(BootstrapError) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[1].hasPrefix("/") else {
            throw .invalidRequest("expected 'METHOD /path', got '\(line)'")
        }
        self.init(method: String(parts[0]).uppercased(), target: String(parts[1]))
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var reason: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, reason: String, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Sends one request over a connected socket with SwiftNIO's HTTP/1.1 codec and passes the response on as it
/// arrives: its head, then each piece of the body (chunked and close-delimited bodies, server-sent events).
enum HTTPForwarder {
    /// Streams the response: `onHead` once, then `onBody` per piece as the function writes it. Past `maxBody`
    /// bytes in all (nil: no limit) `.responseTooLarge` is thrown.
    static func stream(
        _ request: HTTPRequest, over socket: OwnedFileDescriptor, group: EventLoopGroup,
        extraHeaders: [(String, String)], maxBody: Int?,
        onHead: @Sendable (HTTPResponse) async throws -> Void, onBody: @Sendable ([UInt8]) async throws -> Void
    ) async throws {
        let fd = fcntl(socket.rawValue, F_DUPFD_CLOEXEC, 0)
        if fd < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
        let channel = try await ClientBootstrap(group: group).withConnectedSocket(fd) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders(request.headers)
            for (name, value) in extraHeaders { headers.replaceOrAdd(name: name, value: value) }
            if !headers.contains(name: "Host") { headers.add(name: "Host", value: "127.0.0.1:\(SCFContract.functionPort)") }
            headers.replaceOrAdd(name: "Content-Length", value: "\(request.body.count)")
            let head = HTTPRequestHead(
                version: .http1_1, method: HTTPMethod(rawValue: request.method),
                uri: request.target, headers: headers)
            // One write of the whole request: a function that answers after the head and closes at once must not
            // find faasbox still writing (that failed as 'I/O on closed channel' under load).
            var parts: [HTTPClientRequestPart] = [.head(head)]
            if !request.body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: request.body)))) }
            parts.append(.end(nil))
            try await outbound.write(contentsOf: parts)
            var received = 0
            for try await part in inbound {
                switch part {
                case .head(let h):
                    try await onHead(
                        HTTPResponse(
                            status: Int(h.status.code), reason: h.status.reasonPhrase,
                            headers: h.headers.map { ($0.name, $0.value) }, body: []))
                case .body(let buffer):
                    received += buffer.readableBytes
                    if let maxBody, received > maxBody { throw BootstrapError.responseTooLarge(limit: maxBody) }
                    try await onBody(Array(buffer.readableBytesView))
                case .end:
                    return
                }
            }
            throw BootstrapError.invocationFailed("the function closed the connection before a complete response")
        }
    }

    /// The whole response, collected (up to `maxBody` bytes).
    static func send(
        _ request: HTTPRequest, over socket: OwnedFileDescriptor, group: EventLoopGroup,
        extraHeaders: [(String, String)], maxBody: Int
    ) async throws -> HTTPResponse {
        let response = Mutex(HTTPResponse(status: 0, reason: "", headers: [], body: []))
        try await stream(
            request, over: socket, group: group, extraHeaders: extraHeaders, maxBody: maxBody,
            onHead: { head in response.withLock { $0 = head } },
            onBody: { piece in response.withLock { $0.body += piece } })
        return response.withLock { $0 }
    }
}
