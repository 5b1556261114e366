import NIOCore
import NIOHTTP1
import NIOPosix
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the custom-runtime API (`RuntimeAPI`) over HTTP/1.1 on a listening socket faasbox made inside the
/// instance's network namespace (127.0.0.1:9001 there), with SwiftNIO.
final class RuntimeAPIServer: Sendable {
    static let port: UInt16 = 9001
    /// Connections open at once per instance (a runtime uses one or two): past it a connection is closed at
    /// once. With the 6 MB body bound, what one instance's runtime API can hold is bounded (docs/limits.md).
    static let maxConnections = 8
    /// A request must arrive whole (head and body) within this of the connection's opening or of the previous
    /// answer; a long poll (`invocation/next`) waits for faasbox, not for the client, and is not cut.
    static let requestTimeout: TimeAmount = .seconds(30)
    let api: RuntimeAPI
    private let channel: Channel

    private init(api: RuntimeAPI, channel: Channel) {
        self.api = api
        self.channel = channel
    }

    /// Starts serving on `listener` (a bound, listening TCP socket; the server takes a duplicate of it). With
    /// `admit`, a connection is closed at once unless `admit(peer port, local port)` says it is the instance's
    /// (on the host's loopback, where any host process could connect).
    static func start(
        _ api: RuntimeAPI, listener: OwnedFileDescriptor, group: EventLoopGroup,
        admit: (@Sendable (_ peerPort: UInt16, _ localPort: UInt16) -> Bool)? = nil,
        maxConnections: Int = RuntimeAPIServer.maxConnections, requestTimeout: TimeAmount = RuntimeAPIServer.requestTimeout
    ) async throws -> RuntimeAPIServer {
        let fd = fcntl(listener.rawValue, F_DUPFD_CLOEXEC, 0)
        if fd < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
        let open = ConnectionCap(maxConnections)
        let refusedOnce = AtomicFlag()
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                guard open.opened() else {
                    open.closed()
                    if refusedOnce.setOnce() {
                        api.violations("runtime API: \(maxConnections) connections are open; further ones are closed")
                    }
                    return channel.eventLoop.makeFailedFuture(RuntimeAPIServer.Refused())
                }
                channel.closeFuture.whenComplete { _ in open.closed() }
                if let admit {
                    let peer = channel.remoteAddress?.port.flatMap { UInt16(exactly: $0) }
                    let local = channel.localAddress?.port.flatMap { UInt16(exactly: $0) }
                    guard let peer, let local, admit(peer, local) else {
                        return channel.eventLoop.makeFailedFuture(RuntimeAPIServer.Refused())
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RuntimeAPIHandler(api: api, requestTimeout: requestTimeout))
                }
            }
            .withBoundSocket(fd).get()
        return RuntimeAPIServer(api: api, channel: channel)
    }

    /// A connection from outside the instance, or past the cap (closed unanswered).
    struct Refused: Error {}

    /// Stops listening and closes every connection (the API itself is closed by the caller).
    func stop() async {
        try? await channel.close()
    }

    /// Closes the API (whatever waits in it ends with `reason`), then stops serving.
    func shutdown(_ reason: BootstrapError) async {
        api.close(reason)
        await stop()
    }
}

/// One connection: collects a request (body up to the contract's 6 MB), routes it to the API, writes the reply.
private final class RuntimeAPIHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: RuntimeAPI
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    private var deadline: Scheduled<Void>?
    private let requestTimeout: TimeAmount

    init(api: RuntimeAPI, requestTimeout: TimeAmount) {
        self.api = api
        self.requestTimeout = requestTimeout
    }

    /// Closes the connection unless a whole request arrives within `requestTimeout` (a slow or silent client
    /// holds nothing for long).
    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) { channel.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
        case .body(let buffer):
            if body.count + buffer.readableBytes > SCFContract.maxSyncPayloadBytes {
                tooLarge = true
                body = []
            } else if !tooLarge {
                body.append(contentsOf: buffer.readableBytesView)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            deadline?.cancel()
            deadline = nil
            handle(head, body: body, tooLarge: tooLarge, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, body: [UInt8], tooLarge: Bool, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let keepAlive = head.isKeepAlive
        let api = self.api
        let method = head.method
        Task {
            let (reply, delivered) = await Self.route(api, method: method, path: path, body: body, tooLarge: tooLarge)
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.write(reply, keepAlive: keepAlive, context: context) { ok in
                    if !ok, let delivered { api.putBack(delivered) }
                }
                if keepAlive && context.channel.isActive { handler.armDeadline(context) }
            }
        }
    }

    /// The reply to one call, and the invocation it delivered (to put back if the reply cannot be written).
    private static func route(_ api: RuntimeAPI, method: HTTPMethod, path: String, body: [UInt8], tooLarge: Bool) async
        -> (RuntimeAPI.Reply, RuntimeAPI.Invocation?)
    {
        switch (method, path) {
        case (.POST, "/runtime/init/ready"):
            return (api.initReady(), nil)
        case (.GET, "/runtime/invocation/next"):
            switch await api.next() {
            case .invocation(let invocation):
                let headers = [
                    ("request_id", invocation.requestID), ("memory_limit_in_mb", "\(invocation.memoryMB)"),
                    ("time_limit_in_ms", "\(invocation.timeoutMilliseconds)"), ("Content-Type", "application/json"),
                ]
                return (RuntimeAPI.Reply(status: 200, headers: headers, body: invocation.event), invocation)
            case .refused(let reply):
                return (reply, nil)
            }
        case (.POST, "/runtime/invocation/response"):
            if tooLarge {
                _ = api.answer(.failed(.responseTooLarge(limit: SCFContract.maxSyncPayloadBytes)))
                return (.refused(413, "the response is over \(SCFContract.maxSyncPayloadBytes) bytes"), nil)
            }
            return (api.answer(.response(body)), nil)
        case (.POST, "/runtime/invocation/error"):
            return (api.answer(.error(tooLarge ? Array("(error body over 6 MB, dropped)".utf8) : body)), nil)
        default:
            return (api.unknown(method.rawValue, path), nil)
        }
    }

    private func write(
        _ reply: RuntimeAPI.Reply, keepAlive: Bool, context: ChannelHandlerContext, done: @escaping @Sendable (Bool) -> Void
    ) {
        var headers = HTTPHeaders(reply.headers)
        headers.replaceOrAdd(name: "Content-Length", value: "\(reply.body.count)")
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: reply.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !reply.body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: reply.body)))), promise: nil) }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        let channel = context.channel
        promise.futureResult.whenComplete { result in
            if case .failure = result { done(false) } else { done(true) }
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
