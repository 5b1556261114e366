import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A connection to a function's port 9000, speaking HTTP/1.1 with SwiftNIO's codec. Each `exchange` sends one
/// request and passes the response on as it arrives: its head, then each piece of the body (chunked and
/// close-delimited bodies, server-sent events). When the function keeps the connection alive, the instance
/// keeps it for its next invocation, as a reverse proxy keeps upstream connections.
///
/// The channel lives on the event loop of the task that opened it where there is one (under `faasbox serve`,
/// the caller's connection's), and responses are handed over by a channel handler, not an async sequence: no
/// thread hand-off per request or per piece (docs/benchmarks.md, "Warm path").
final class FunctionConnection: Sendable {
    private let channel: Channel
    private let relay: ResponseRelay
    /// When the last exchange ended (for `isFresh`).
    private let lastUsed = Mutex(ContinuousClock.now)

    private init(channel: Channel, relay: ResponseRelay) {
        self.channel = channel
        self.relay = relay
    }

    /// Takes over a connected socket (a duplicate of it: `socket` stays the caller's), on `loop`.
    static func open(_ socket: OwnedFileDescriptor, on loop: EventLoop) async throws -> FunctionConnection {
        let fd = fcntl(socket.rawValue, F_DUPFD_CLOEXEC, 0)
        if fd < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
        let relay = ResponseRelay()
        // From here on the channel owns `fd` (and closes it, on failure too).
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(relay)
                }
            }
            .withConnectedSocket(fd).get()
        return FunctionConnection(channel: channel, relay: relay)
    }

    /// The event loop the connection's I/O runs on.
    var eventLoop: EventLoop { channel.eventLoop }

    /// Whether the connection can take another request: still open, and idle for less than `maxIdle` (functions'
    /// servers close idle connections after a few seconds — Node's default is 5 s — and a request must not race
    /// such a close).
    func isFresh(maxIdle: Duration) -> Bool {
        channel.isActive && ContinuousClock.now - lastUsed.withLock { $0 } < maxIdle
    }

    /// Sends `request` and streams the response to `onHead`, `onBody` and, once it is complete, `onEnd` (all
    /// called on the connection's event loop, `onEnd` before this returns: the caller's response can end before
    /// the task that awaits this one resumes). Returns whether the connection may be used again (HTTP/1.1 keep-alive on both sides); past `maxBody`
    /// bytes in all (nil: no limit) `.responseTooLarge` is thrown. A thrown error carries whether any of the
    /// response had arrived (`FunctionConnection.Failure`).
    func exchange(
        _ request: HTTPRequest, extraHeaders: [(String, String)], maxBody: Int?,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void, onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void, flow: ResponseFlow? = nil
    ) async throws -> Bool {
        let head = Self.head(of: request, extraHeaders: extraHeaders)
        let exchange = ResponseRelay.Exchange(
            done: channel.eventLoop.makePromise(), maxBody: maxBody, onHead: onHead, onBody: onBody, onEnd: onEnd,
            flow: flow)
        let channel = self.channel
        let relay = self.relay
        let body = request.body
        let send = {
            relay.arm(exchange)
            guard channel.isActive else {
                relay.requestFailed(FunctionConnection.Closed(detail: "the function closed the connection"))
                return
            }
            // One write of the whole request: a function that answers after the head and closes at once must not
            // find faasbox still writing (that failed as 'I/O on closed channel' under load).
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { relay.requestFailed($0) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: written)
        }
        if channel.eventLoop.inEventLoop { send() } else { channel.eventLoop.execute(send) }
        let keepAlive = try await exchange.done.futureResult.get()
        lastUsed.withLock { $0 = .now }
        return keepAlive && channel.isActive
    }

    func close() { channel.close(promise: nil) }

    /// Why an exchange failed, and whether any of the response had arrived by then.
    struct Failure: Error, CustomStringConvertible {
        let underlying: any Error
        let responseStarted: Bool
        var description: String { "\(underlying)" }
    }

    /// The connection ended before the response did (the caller finds out why: a crash, the OOM killer…).
    struct Closed: Error, CustomStringConvertible {
        let detail: String
        var description: String { detail }
    }

    static func head(of request: HTTPRequest, extraHeaders: [(String, String)]) -> HTTPRequestHead {
        var headers = HTTPHeaders(request.headers)
        for (name, value) in extraHeaders { headers.replaceOrAdd(name: name, value: value) }
        if !headers.contains(name: "Host") { headers.add(name: "Host", value: "127.0.0.1:\(SCFContract.functionPort)") }
        headers.replaceOrAdd(name: "Content-Length", value: "\(request.body.count)")
        return HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.target, headers: headers)
    }
}

/// Passes a function's response parts to the armed exchange as they are decoded, and completes it at the
/// response's end (with whether the connection stays open) or with the error that cut it short (a callback's,
/// the codec's, or the connection closing first). Touched only on the channel's event loop.
private final class ResponseRelay: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    struct Exchange {
        let done: EventLoopPromise<Bool>
        let maxBody: Int?
        let onHead: @Sendable (HTTPResponse) throws -> Void
        let onBody: @Sendable ([UInt8]) throws -> Void
        let onEnd: @Sendable () -> Void
        let flow: ResponseFlow?
    }

    private var current: Exchange?
    private var received = 0
    private var started = false
    private var keepAlive = false

    func arm(_ exchange: Exchange) {
        current = exchange
        received = 0
        started = false
        keepAlive = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange = current else { return }  // nothing asked: a stray byte from the function
        do {
            switch unwrapInboundIn(data) {
            case .head(let h):
                started = true
                keepAlive = h.isKeepAlive
                if h.status == .switchingProtocols {
                    // Relayed, it would leave the caller waiting on a protocol faasbox does not carry.
                    throw BootstrapError.badResponse(
                        "101 Switching Protocols (to \(h.headers["Upgrade"].first ?? "?")): faasbox relays HTTP "
                            + "requests and responses, not upgraded connections such as WebSocket")
                }
                try exchange.onHead(
                    HTTPResponse(
                        status: Int(h.status.code), reason: h.status.reasonPhrase,
                        headers: h.headers.map { ($0.name, $0.value) }, body: []))
            case .body(let buffer):
                received += buffer.readableBytes
                if let maxBody = exchange.maxBody, received > maxBody {
                    throw BootstrapError.responseTooLarge(limit: maxBody)
                }
                try exchange.onBody(Array(buffer.readableBytesView))
                // The caller is full: read no more of the response until it has taken what it has.
                let channel = context.channel
                let held = exchange.flow?.holdIfPaused {
                    channel.eventLoop.execute {
                        channel.setOption(ChannelOptions.autoRead, value: true).whenSuccess { channel.read() }
                    }
                }
                if held == true { channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
            case .end:
                current = nil
                if !keepAlive { context.close(promise: nil) }
                exchange.onEnd()
                exchange.done.succeed(keepAlive)
            }
        } catch {
            fail(error, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The codec refused what the function sent: bytes arrived, so the request is not sent again.
        if let parse = error as? HTTPParserError {
            started = true
            fail(BootstrapError.badResponse("its response is not valid HTTP/1.1 (\(parse))"), context: context)
            return
        }
        fail(error, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(FunctionConnection.Closed(detail: "the function closed the connection before a complete response"), context: context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(FunctionConnection.Closed(detail: "the connection to the function ended"), context: nil)
    }

    /// The request could not be sent: fails the armed exchange unless its response is already arriving (a
    /// function may answer early and close; then the answer counts, and a cut-off one fails on its own).
    func requestFailed(_ error: any Error) {
        if !started { fail(error, context: nil) }
    }

    /// Fails the armed exchange with `error`, then closes the connection: in that order, as the close calls
    /// `channelInactive` at once, whose "closed before a complete response" must not take the place of `error`.
    private func fail(_ error: any Error, context: ChannelHandlerContext?) {
        let exchange = current
        current = nil
        exchange?.done.fail(FunctionConnection.Failure(underlying: error, responseStarted: started))
        context?.close(promise: nil)
    }
}
