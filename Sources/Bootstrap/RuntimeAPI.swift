import Synchronization

/// The custom-runtime API's state for one instance (contract §3), apart from HTTP: the instance reports
/// `init/ready` once, long-polls `invocation/next`, and answers each invocation once with `response` or
/// `error`. Calls out of order are refused with a 4xx reply and recorded. `close` ends it: everything
/// waiting is answered (the invocation with the reason, pollers with nothing).
final class RuntimeAPI: Sendable {
    struct Invocation: Sendable {
        let requestID: String
        let event: [UInt8]
        let memoryMB: Int
        let timeoutMilliseconds: Int64
    }

    enum Outcome: Sendable {
        case response([UInt8])
        case error([UInt8])
        case failed(BootstrapError)
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: [UInt8]

        static func ok() -> Reply { Reply(status: 200, body: Array("{}".utf8)) }
        static func refused(_ status: Int, _ message: String) -> Reply {
            Reply(status: status, headers: [("Content-Type", "application/json")], body: Array(#"{"error":"\#(message)"}"#.utf8))
        }
    }

    private typealias Waiting = (invocation: Invocation, result: CheckedContinuation<Outcome, Never>)

    private struct State {
        var ready = false
        var readyWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var queued: [Waiting] = []
        var pollers: [CheckedContinuation<Next, Never>] = []
        var current: Waiting?
        var closedReason: BootstrapError?
    }

    private let state = Mutex(State())
    /// Protocol violations, for the instance's log (e.g. a second init/ready).
    let violations: @Sendable (String) -> Void

    init(violations: @escaping @Sendable (String) -> Void) { self.violations = violations }

    var isReady: Bool { state.withLock { $0.ready } }

    // MARK: What the instance calls

    /// `POST /runtime/init/ready`.
    func initReady() -> Reply {
        becomeReady() ? .ok() : refuse(400, "init/ready was already reported")
    }

    /// Marks the instance ready and wakes whoever waits for it; false if it already was.
    private func becomeReady() -> Bool {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>]? in
            if s.ready { return nil }
            s.ready = true
            defer { s.readyWaiters = [:] }
            return Array(s.readyWaiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: true) }
        return true
    }

    /// `GET /runtime/invocation/next`: the next invocation, waiting for one; refused while another invocation
    /// is unanswered, and once the instance is going away.
    func next() async -> Next {
        // A client that polls without reporting ready is taken as ready (and told so in the log).
        if becomeReady() {
            violations("runtime API: GET /runtime/invocation/next before POST /runtime/init/ready; taken as ready")
        }
        let taken: Next = await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Next? in
                if s.closedReason != nil { return .refused(.refused(410, "the instance is stopping")) }
                if let current = s.current {
                    return .refused(.refused(400, "invocation \(current.invocation.requestID) has no response or error yet"))
                }
                if !s.queued.isEmpty {
                    s.current = s.queued.removeFirst()
                    return .invocation(s.current!.invocation)
                }
                s.pollers.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
        if case .refused(let reply) = taken, reply.status == 400 {
            violations("runtime API: GET /runtime/invocation/next while an invocation is unanswered (answered 400)")
        }
        return taken
    }

    enum Next: Sendable {
        case invocation(Invocation)
        case refused(Reply)
    }

    /// A delivered invocation whose reply could not be written (the poller went away): it goes back first in line.
    func putBack(_ invocation: Invocation) {
        let waiting = state.withLock { s -> Waiting? in
            guard let current = s.current, current.invocation.requestID == invocation.requestID else { return nil }
            s.current = nil
            return current
        }
        if let waiting { deliver(waiting, first: true) }
    }

    /// `POST /runtime/invocation/response` and `/error`.
    func answer(_ outcome: Outcome) -> Reply {
        let current = state.withLock { s -> Waiting? in
            defer { s.current = nil }
            return s.current
        }
        guard let current else {
            let what = if case .error = outcome { "error" } else { "response" }
            return refuse(400, "an invocation \(what) with no invocation pending")
        }
        current.result.resume(returning: outcome)
        return .ok()
    }

    /// A path or method the API does not have.
    func unknown(_ method: String, _ path: String) -> Reply { refuse(404, "no such runtime API call: \(method) \(path)") }

    private func refuse(_ status: Int, _ message: String) -> Reply {
        violations("runtime API: \(message) (answered \(status))")
        return .refused(status, message)
    }

    // MARK: What faasbox calls

    /// Waits until the instance reports ready; false if the API is closed first or the task is cancelled.
    func waitReady() async -> Bool {
        let id = UInt64.random(in: 0...UInt64.max)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { s -> Bool? in
                    if s.ready { return true }
                    if s.closedReason != nil || Task.isCancelled { return false }
                    s.readyWaiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.readyWaiters.removeValue(forKey: id) }?.resume(returning: false)
        }
    }

    /// Hands `invocation` to the instance and waits for its answer (or for `close`).
    func invoke(_ invocation: Invocation) async -> Outcome {
        await withCheckedContinuation { continuation in deliver((invocation, continuation), first: false) }
    }

    private func deliver(_ waiting: Waiting, first: Bool) {
        enum Step {
            case poller(CheckedContinuation<Next, Never>)
            case closed(BootstrapError)
            case queued
        }
        let step = state.withLock { s -> Step in
            if let reason = s.closedReason { return .closed(reason) }
            if s.current == nil, !s.pollers.isEmpty {
                s.current = waiting
                return .poller(s.pollers.removeFirst())
            }
            s.queued.insert(waiting, at: first ? 0 : s.queued.count)
            return .queued
        }
        switch step {
        case .poller(let poller): poller.resume(returning: .invocation(waiting.invocation))
        case .closed(let reason): waiting.result.resume(returning: .failed(reason))
        case .queued: break
        }
    }

    /// Ends the API: the pending and queued invocations fail with `reason`, pollers and ready-waiters return.
    func close(_ reason: BootstrapError) {
        let s = state.withLock { s -> State? in
            if s.closedReason != nil { return nil }
            let old = s
            s = State(ready: s.ready, closedReason: reason)
            return old
        }
        guard let s else { return }
        if let current = s.current { current.result.resume(returning: .failed(reason)) }
        for waiting in s.queued { waiting.result.resume(returning: .failed(reason)) }
        for poller in s.pollers { poller.resume(returning: .refused(.refused(410, "the instance is stopping"))) }
        for waiter in s.readyWaiters.values { waiter.resume(returning: false) }
    }
}
