import Bootstrap
import Executor
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// `ANY /web/{name}/{path…}`: the caller's request forwarded to a web function's instance (method, path after
/// the function's name, query, headers, body), its response passed back as it arrives.
///
/// This is the warm path that users time, so it does not go through Hummingbird's router: a channel handler
/// at the front of each connection's pipeline (`WebPassthroughHandler`, right after NIO's HTTP/1 decoder)
/// takes `/web/` requests and writes the function's response parts straight back on the event loop they
/// arrive on; every other request goes on to the API's router (docs/benchmarks.md, "Warm path").
enum WebPassthrough {
    /// Headers that describe one connection, not the message: never forwarded either way (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Request headers the function does not get: the hop-by-hop ones, and `Expect` (faasbox has answered it
    /// and read the body before the function sees the request).
    static let forwardedNot = hopByHop.union(["expect"])

    /// The function named by a `/web/{name}` or `/web/{name}/…` request target; nil for any other target.
    static func functionName(_ target: String) -> String? {
        guard target.hasPrefix("/web/") else { return nil }
        let name = target.dropFirst(5).prefix { $0 != "/" && $0 != "?" }
        return name.isEmpty ? nil : String(name)
    }

    /// The request target the function sees: what follows `/web/{name}` (at least `/`), query included.
    static func target(_ path: String, name: String) -> String {
        let prefix = "/web/\(name)"
        var rest = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
        if !rest.hasPrefix("/") { rest = "/" + rest }
        return rest
    }

    /// The request as the function gets it (hop-by-hop headers dropped; faasbox adds the X-Scf-* ones).
    static func request(_ head: HTTPRequestHead, name: String, body: ByteBuffer?) -> Bootstrap.HTTPRequest {
        Bootstrap.HTTPRequest(
            method: head.method.rawValue, target: target(head.uri, name: name),
            headers: head.headers.filter { !forwardedNot.contains($0.name.lowercased()) }.map { ($0.name, $0.value) },
            body: body.map { Array($0.readableBytesView) } ?? [])
    }

    /// The response head the caller gets: the function's, less its hop-by-hop headers, framed for the caller's
    /// connection (NIO's encoder adds chunked framing when the function gave no length).
    static func responseHead(_ response: Bootstrap.HTTPResponse, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 1)
        for (name, value) in response.headers where !hopByHop.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(
            version: version, status: HTTPResponseStatus(statusCode: response.status, reasonPhrase: response.reason),
            headers: headers)
    }
}

/// Hummingbird's HTTP/1 channel with `WebPassthroughHandler` in front of its request handling.
struct WebFrontedHTTP1Channel: ServerChildChannel {
    let base: HTTP1Channel
    let service: FunctionService
    /// On the TCP listener: the signature check for functions that are not public.
    let verifier: RequestVerifier?
    /// The listener's connections and timeouts (`ListenerGuard`, first after the decoder).
    let budget: ConnectionBudget

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        let (service, verifier, budget) = (self.service, self.verifier, self.budget)
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(WebPassthroughHandler(service: service, verifier: verifier), position: .after(decoder))
            try pipeline.addHandler(ListenerGuard(budget: budget), position: .after(decoder))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Takes `/web/{name}/…` requests off a connection and answers them from the function; passes every other
/// request on to Hummingbird. Requests are answered in order, one at a time: a request that arrives
/// (pipelined) while another's response is still being written waits in `queued`, and while a web response
/// is being written no more is read from the caller. Touched only on the connection's event loop.
final class WebPassthroughHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase { case idle, api, web }

    /// The web request being read or answered.
    private struct WebCall {
        let head: HTTPRequestHead
        let name: String
        var body: ByteBuffer?
        /// Refused (too large) while it was read: the rest of it is dropped.
        var refused = false
        /// The response head went out.
        var answered = false
    }

    private let service: FunctionService
    private let verifier: RequestVerifier?
    /// The web call in progress holds the function back through this while the caller's socket is full.
    private var flow: ResponseFlow?
    private var phase = Phase.idle
    private var requestOpen = false
    private var responseOpen = false
    private var web: WebCall?
    /// Tells a web call's callbacks from those of an earlier one (or of one whose connection closed).
    private var generation = 0
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var readPending = false
    private var flushPending = false
    /// The server is shutting down (or the caller asked): close once the current response is written.
    private var closeAfterResponse = false
    /// A refusal went out while its request was still arriving: close when that request ends.
    private var refusalWritten = false

    init(service: FunctionService, verifier: RequestVerifier?) {
        self.service = service
        self.verifier = verifier
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if queued.isEmpty { dispatch(part, context: context) } else { queued.append(part) }
    }

    private func dispatch(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            guard phase == .idle else { return queued.append(part) }
            requestOpen = true
            responseOpen = true
            if let name = WebPassthrough.functionName(head.uri) {
                phase = .web
                web = WebCall(head: head, name: name)
                if let failure = authenticate(head, name: name, body: nil, complete: false) {
                    return refuse(failure, context: context)
                }
                let limit = SCFContract.maxSyncPayloadBytes
                if let length = head.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > limit {
                    return refuse(.invocation(.instance(.requestTooLarge(length, limit: limit))), context: context)
                }
                if head.version.minor >= 1, head.headers["Expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                    // The body is read here before the function sees the request: ask for it now (curl waits a
                    // second for this before sending a large body).
                    let proceed = HTTPResponseHead(version: head.version, status: .continue)
                    context.writeAndFlush(wrapOutboundOut(.head(proceed)), promise: nil)
                }
            } else {
                phase = .api
                context.fireChannelRead(wrapInboundOut(part))
            }
        case .body(var buffer):
            if phase == .api { return context.fireChannelRead(wrapInboundOut(part)) }
            guard phase == .web, var call = web, !call.refused else { return }
            let size = (call.body?.readableBytes ?? 0) + buffer.readableBytes
            if size > SCFContract.maxSyncPayloadBytes {
                return refuse(
                    .invocation(.instance(.requestTooLarge(size, limit: SCFContract.maxSyncPayloadBytes))), context: context)
            }
            if call.body == nil { call.body = buffer } else { call.body!.writeBuffer(&buffer) }
            web = call
        case .end:
            requestOpen = false
            switch phase {
            case .api:
                context.fireChannelRead(wrapInboundOut(part))
                settle(context: context)
            case .web:
                guard let call = web, !call.refused else { return closeRefused(context: context) }
                if let failure = authenticate(call.head, name: call.name, body: call.body, complete: true) {
                    web?.refused = true
                    closeAfterResponse = true
                    return write(status: 401, json: ServiceAPI.authFailureJSON(failure), context: context)
                }
                invoke(call, context: context)
            case .idle: break
            }
        }
    }

    /// Answers the web request being read with `error` at once and ends the connection: the response, then a
    /// half-close (the caller can still send, and the rest of its request is read and dropped, so that the
    /// kernel does not reset the connection under the answer), then the close once the request has ended.
    private func refuse(_ error: ServiceError, context: ChannelHandlerContext) {
        web?.refused = true
        closeAfterResponse = true
        writeError(error, context: context)
    }

    private func refuse(_ failure: AuthFailure, context: ChannelHandlerContext) {
        web?.refused = true
        closeAfterResponse = true
        write(status: 401, json: ServiceAPI.authFailureJSON(failure), context: context)
    }

    /// On the TCP listener, a web call to a function that is not public must be signed: checked on the head
    /// alone first (not `complete`: present, fresh, a known id), then with the body's hash once it has arrived.
    private func authenticate(_ head: HTTPRequestHead, name: String, body: ByteBuffer?, complete: Bool) -> AuthFailure? {
        guard let verifier, !service.isPublic(name) else { return nil }
        let (path, query) = Self.split(head.uri)
        let header: (String) -> String? = { head.headers.first(name: $0) }
        do throws(AuthFailure) {
            let payload = try RequestVerifier.payload(contentSHA256: header("x-tc-content-sha256"))
            var hash: String?
            switch payload {
            case .unsigned: hash = TC3Signature.unsignedPayload
            case .declared(let declared):
                // Checked against the body, which is all here before the call is made.
                if let body, TC3Signature.sha256Hex(body.readableBytesView) != declared {
                    throw AuthFailure(code: .signatureFailure, message: "the body does not match its signed X-TC-Content-SHA256")
                }
                hash = declared
            case .body:
                if complete { hash = TC3Signature.sha256Hex(body?.readableBytesView ?? ByteBuffer().readableBytesView) }
            }
            _ = try verifier.verify(
                method: head.method.rawValue, path: path, query: query, header: header, payloadHash: hash ?? "",
                headersOnly: hash == nil)
        } catch {
            return error
        }
        return nil
    }

    static func split(_ uri: String) -> (path: String, query: String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }

    private func closeRefused(context: ChannelHandlerContext) {
        if refusalWritten { context.close(promise: nil) }
    }

    /// Starts the invocation of a fully read web request; its response parts come back through `answer`.
    private func invoke(_ call: WebCall, context: ChannelHandlerContext) {
        generation += 1
        let generation = self.generation
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let onLoop: @Sendable (@escaping @Sendable (WebPassthroughHandler, ChannelHandlerContext) -> Void) -> Void = {
            work in
            if loop.inEventLoop {
                work(bound.value.0, bound.value.1)
            } else {
                loop.execute { work(bound.value.0, bound.value.1) }
            }
        }
        let flow = ResponseFlow()
        self.flow = flow
        let sink = ResponseSink(
            head: { response in onLoop { $0.answer(.head(response), generation, context: $1) } },
            body: { bytes in
                // Paused here, on the function's side, as soon as the caller's socket is full (checked after each
                // write, on the caller's loop): no more is read from the function until it drains.
                onLoop { $0.answer(.body(bytes), generation, context: $1) }
            },
            end: { onLoop { $0.answer(.end, generation, context: $1) } }, flow: flow)
        let request = WebPassthrough.request(call.head, name: call.name, body: call.body)
        let (service, name) = (self.service, call.name)
        Task.immediate {
            var failure: ServiceError?
            do throws(ServiceError) {
                let outcome = try await service.invokeWeb(name, request: request, sink: sink)
                if case .failure(let error) = outcome.result { failure = .invocation(error) }
            } catch {
                failure = error
            }
            if let failure { onLoop { $0.answer(.failure(failure), generation, context: $1) } }
        }
    }

    private enum Answer {
        case head(Bootstrap.HTTPResponse)
        case body([UInt8])
        case end
        case failure(ServiceError)
    }

    /// A part of the function's answer to the web call `generation`: written to the caller (a failure before
    /// the response began becomes the API's JSON error; after, it cuts the connection).
    private func answer(_ answer: Answer, _ generation: Int, context: ChannelHandlerContext) {
        guard generation == self.generation, phase == .web, responseOpen, var call = web else { return }
        switch answer {
        case .head(let response):
            call.answered = true
            web = call
            writeHead(response, of: call, context: context)
            flushSoon(context: context)
        case .body(let bytes):
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            if !context.channel.isWritable {
                flow?.pause()
                context.flush()
            } else {
                flushSoon(context: context)
            }
        case .end:
            endResponse(context: context)
        case .failure(let error):
            if call.answered { return context.close(promise: nil) }
            writeError(error, context: context)
        }
    }

    /// Writes the API's JSON error for `error` as the whole response.
    private func writeError(_ error: ServiceError, context: ChannelHandlerContext) {
        write(status: error.status, json: ServiceAPI.errorJSON(error), context: context)
    }

    private func write(status: Int, json body: [UInt8], context: ChannelHandlerContext) {
        guard responseOpen, let call = web else { return }
        let headers = [("Content-Type", "application/json"), ("Content-Length", "\(body.count)")]
        writeHead(
            Bootstrap.HTTPResponse(status: status, reason: "", headers: headers, body: []), of: call, context: context)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        endResponse(context: context)
    }

    /// Writes the head of the answer to `call`, framed for the caller's connection: kept alive if the caller
    /// asked and nothing since (shutdown, a refusal) says to close.
    private func writeHead(_ response: Bootstrap.HTTPResponse, of call: WebCall, context: ChannelHandlerContext) {
        let keepAlive = call.head.isKeepAlive && !closeAfterResponse
        closeAfterResponse = !keepAlive
        let head = WebPassthrough.responseHead(response, version: call.head.version, keepAlive: keepAlive)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    private func endResponse(context: ChannelHandlerContext) {
        responseOpen = false
        flow = nil
        flushPending = false
        if closeAfterResponse {
            let written = context.eventLoop.makePromise(of: Void.self)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            written.futureResult.whenComplete { _ in
                let (handler, context) = bound.value
                if handler.requestOpen {  // a refused request still coming: stop answering, keep reading
                    handler.refusalWritten = true
                    context.close(mode: .output, promise: nil)
                } else {
                    context.close(promise: nil)
                }
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        settle(context: context)
    }

    /// Flushes once the parts that arrived together are written (one write for head, body and end when the
    /// function's response came in one read; at once for a stream that trickles).
    private func flushSoon(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            guard handler.flushPending else { return }
            handler.flushPending = false
            context.flush()
        }
    }

    /// When the current request is read and answered: back to idle, then the queued requests, then reading.
    private func settle(context: ChannelHandlerContext) {
        guard phase != .idle, !requestOpen, !responseOpen else { return }
        phase = .idle
        web = nil
        if closeAfterResponse { return }
        var replayed = false
        while let part = queued.first {
            if case .head = part, phase != .idle { break }
            queued.removeFirst()
            dispatch(part, context: context)
            replayed = true
        }
        // What went on to the router is delivered at a read's completion (NIOAsyncChannel's inbound buffer).
        if replayed { context.fireChannelReadComplete() }
        if readPending && queued.isEmpty {
            readPending = false
            context.read()
        }
    }

    // MARK: the API's side, and the connection

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if phase == .api, case .end = unwrapOutboundIn(data) {
            responseOpen = false
            settle(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        // No more of the caller's requests while a web response is being written or requests wait.
        if (phase == .web && !requestOpen) || !queued.isEmpty {
            readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, phase == .web {
            closeAfterResponse = true  // the web call in progress finishes first
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if phase == .web { return context.close(promise: nil) }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        generation += 1  // late answers of the call in progress go nowhere
        flow?.resume()  // the caller is gone: the function's answer is read (and dropped) to its end
        flow = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flow?.resume() }
        context.fireChannelWritabilityChanged()
    }
}
