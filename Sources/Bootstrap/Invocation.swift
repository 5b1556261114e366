import Foundation
import Synchronization

/// What one invocation sends: an HTTP request (web functions) or an event (event and job functions).
public enum Invocation: Sendable {
    case http(HTTPRequest)
    case event(Event)
}

/// An event, checked once where it enters faasbox against its function kind's rules (contract §4, §6): at most
/// the kind's limit, JSON; for a job, one environment variable's worth with no NUL byte (or empty).
public struct Event: Sendable, Equatable {
    public let bytes: [UInt8]

    /// How the event is invoked: sync events may be 6 MB, async ones (and every job's) 128 KB.
    public enum Delivery: Sendable { case sync, async }

    /// Refuses an event the contract refuses: over the limit (406), not JSON (400), a job's with a NUL (400).
    public init(_ bytes: [UInt8], kind: FunctionConfig.Kind, delivery: Delivery = .sync) throws(BootstrapError) {
        let limit = Self.limit(kind: kind, delivery: delivery)
        if bytes.count > limit { throw .requestTooLarge(bytes.count, limit: limit) }
        switch kind {
        case .web:
            throw .invalidRequest("a web function takes HTTP requests, not events")
        case .event:
            if !Self.isJSON(bytes) { throw .invalidRequest("the event of an event function must be JSON") }
        case .job:
            if bytes.contains(0) { throw .invalidRequest("the event of a job function cannot contain NUL bytes") }
            if !bytes.isEmpty && !Self.isJSON(bytes) { throw .invalidRequest("the event of a job function must be JSON") }
        }
        self.bytes = bytes
    }

    /// An event checked when it was stored (the async queue checks each at enqueue): taken as it is.
    package init(checked bytes: [UInt8]) { self.bytes = bytes }

    /// The largest event of `kind` delivered so.
    public static func limit(kind: FunctionConfig.Kind, delivery: Delivery) -> Int {
        // A job's event travels as one environment string, and execve(2) takes at most MAX_ARG_STRLEN (128 KB)
        // for it counting `SCF_CUSTOM_CONTAINER_EVENT=` and the NUL that ends it.
        if kind == .job { return SCFContract.maxJobEventBytes - SCFContract.jobEventVariable.utf8.count - 2 }
        return delivery == .sync ? SCFContract.maxSyncPayloadBytes : SCFContract.maxAsyncPayloadBytes
    }

    private static func isJSON(_ bytes: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
    }
}

/// Where a web function's response goes as it arrives, instead of being collected into the result.
public struct ResponseSink: Sendable {
    /// Called on the instance connection's event loop: must not block.
    public let head: @Sendable (HTTPResponse) throws -> Void
    public let body: @Sendable ([UInt8]) throws -> Void
    /// The response is complete: called on the connection's event loop the moment its last byte arrives,
    /// before the function's output is attributed and the invocation's log and metrics are written.
    public let end: @Sendable () -> Void
    /// How the caller holds the function back while it cannot take more (a client that does not read).
    public let flow: ResponseFlow?
    public init(
        head: @escaping @Sendable (HTTPResponse) throws -> Void,
        body: @escaping @Sendable ([UInt8]) throws -> Void,
        end: @escaping @Sendable () -> Void = {},
        flow: ResponseFlow? = nil
    ) {
        self.head = head
        self.body = body
        self.end = end
        self.flow = flow
    }

    /// The same sink, with `also` run when the response ends (before the sink's own `end`).
    public func onEnd(_ also: @escaping @Sendable () -> Void) -> ResponseSink {
        let end = self.end
        return ResponseSink(
            head: head, body: body,
            end: {
                also()
                end()
            }, flow: flow)
    }
}

/// Backpressure from a caller to the function's connection: while the caller's socket is full (`pause`), no
/// more of the function's response is read; `resume` reads on. So a response streams through a few buffers,
/// whatever its size and however slowly the caller reads.
public final class ResponseFlow: Sendable {
    private let state = Mutex<(paused: Bool, resume: (@Sendable () -> Void)?)>((false, nil))
    public init() {}

    /// The caller cannot take more now.
    public func pause() { state.withLock { $0.paused = true } }

    /// The caller can take more (or is gone): the function's connection reads on.
    public func resume() {
        let waiting = state.withLock { state -> (@Sendable () -> Void)? in
            state.paused = false
            defer { state.resume = nil }
            return state.resume
        }
        waiting?()
    }

    /// The function's side: true when it must stop reading now, `whenResumed` then runs on `resume`.
    func holdIfPaused(_ whenResumed: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.paused else { return false }
            state.resume = whenResumed
            return true
        }
    }
}
