import NIOCore
import NIOHTTP1
import SystemSupport

/// What one listener holds for its callers (docs/limits.md): connections open at once (past the cap a
/// connection's request is answered 503 and the connection closed), how long a connection may wait before its
/// next request's head is complete (slowloris headers), and how long a request body may pause between two
/// pieces. A request being served (a sync invocation, a web call streaming its answer) has no timer.
public struct ListenerLimits: Sendable {
    public var maxConnections = 1000
    public var idleTimeout: TimeAmount = .seconds(30)
    public var bodyTimeout: TimeAmount = .seconds(30)
    public init() {}
}

/// The connections a listener has open, and its limits.
final class ConnectionBudget: Sendable {
    let limits: ListenerLimits
    let cap: ConnectionCap
    init(_ limits: ListenerLimits) {
        self.limits = limits
        cap = ConnectionCap(limits.maxConnections)
    }
}

/// The first handler after the HTTP decoder, on every connection of a listener: counts it against the cap
/// (answering 503 past it), and closes it when it is idle or its body stalls for longer than the limits allow.
/// Touched only on the connection's event loop.
final class ListenerGuard: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let budget: ConnectionBudget
    private var counted = false
    private var overCap = false
    /// Requests whose head arrived and whose response has not ended.
    private var inFlight = 0
    private var readingBody = false
    private var timer: Scheduled<Void>?

    init(budget: ConnectionBudget) { self.budget = budget }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        overCap = !budget.cap.opened()
        arm(context, budget.limits.idleTimeout)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    private func stop() {
        timer?.cancel()
        timer = nil
        if counted {
            counted = false
            budget.cap.closed()
        }
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if overCap {
            if case .head = part { refuse(context) }
            return
        }
        switch part {
        case .head:
            inFlight += 1
            readingBody = true
            arm(context, budget.limits.bodyTimeout)
        case .body:
            if readingBody { arm(context, budget.limits.bodyTimeout) }
        case .end:
            readingBody = false
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
            if inFlight == 0 && !readingBody { arm(context, budget.limits.idleTimeout) }
        }
        context.write(data, promise: promise)
    }

    /// 503 with the API's JSON error, then the connection closes.
    private func refuse(_ context: ChannelHandlerContext) {
        overCap = false  // once
        let body = ByteBuffer(
            string:
                #"{"Error":{"Code":"ResourceUnavailable.TooManyConnections","Message":"faasbox has \#(budget.limits.maxConnections) connections open on this listener; try again later"}}"#
        )
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Connection", "close")])
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        context.write(
            wrapOutboundOut(.head(.init(version: .http1_1, status: .serviceUnavailable, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        timer?.cancel()
        timer = nil
    }
}
