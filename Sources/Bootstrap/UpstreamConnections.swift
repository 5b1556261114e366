import NIOCore
import NIOPosix
import Synchronization
import SystemSupport

/// The connections of one instance to its function's port 9000, as a reverse proxy keeps its upstream ones:
/// the connection kept from the last request when the function keeps connections alive; else, for a function
/// that closes each connection (a server that forks per connection), the next one made while the current
/// request is answered. Connections follow the caller's event loop. `close()` ends them all, for good.
package final class UpstreamConnections: Sendable {
    /// A new connected socket to :9000 in the instance's network.
    private let connect: @Sendable () throws -> OwnedFileDescriptor
    private let group: EventLoopGroup
    /// The connection kept from the last request, when the function keeps connections alive.
    private let kept = Mutex<FunctionConnection?>(nil)
    /// The connection being made for the next request, when the function closed the last one.
    private let next = Mutex<Task<FunctionConnection, any Error>?>(nil)
    /// Whether the function closed the connection after its last response: then each request connects for
    /// the next one as it starts (see `exchange`).
    private let closesConnections = Atomic<Bool>(false)
    /// Requests in a row that came from another event loop than the kept connection's (see `take`).
    private let callsAway = Atomic<Int>(0)
    private let closed = AtomicFlag()

    init(group: EventLoopGroup, connect: @escaping @Sendable () throws -> OwnedFileDescriptor) {
        self.group = group
        self.connect = connect
    }

    /// Calls in a row from another event loop than the kept connection's before it moves to theirs.
    package static let callsBeforeMove = 16
    /// How long a kept connection may idle and still be used: below the keep-alive timeouts of common servers.
    static let keepAliveIdle: Duration = .seconds(4)
    /// How long a connection made ahead may wait for its request: short, as some servers give a new
    /// connection only a second or two to send one (it helps back-to-back calls; later ones connect anew).
    static let preparedIdle: Duration = .seconds(1)
    static let idempotentMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]

    /// One request and its response over the kept connection, the one made ahead, or a new one. A reused
    /// connection the function closed just as the request went out (no byte of response yet) is replaced
    /// once, for methods that may be repeated (RFC 9110 §9.2.2).
    func exchange(
        _ request: HTTPRequest, extraHeaders: [(String, String)], maxResponseBytes: Int?,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void, onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void, flow: ResponseFlow? = nil
    ) async throws {
        // The caller's event loop (serve runs its tasks on the loops of the connections they answer): the
        // connection to the function is best on the same one, or each request and each response crosses
        // threads (an eventfd write and another thread's wake-up each way).
        let here = MultiThreadedEventLoopGroup.currentEventLoop
        var (connection, reused) = try await take(here: here)
        // A function that closes each connection gets the next one while it answers this request, as a proxy's
        // pre-connect does: its accept and per-connection start-up overlap this request instead of delaying
        // the next.
        if closesConnections.load(ordering: .relaxed) { prepare(on: here) }
        while true {
            do {
                let keptAlive = try await connection.exchange(
                    request, extraHeaders: extraHeaders, maxBody: maxResponseBytes, onHead: onHead, onBody: onBody,
                    onEnd: onEnd, flow: flow)
                // (One made ahead for a function that has begun to keep connections goes unused: its timer
                // closes it, see `prepare`.)
                closesConnections.store(!keptAlive, ordering: .relaxed)
                if keptAlive {
                    keep(connection)
                } else {
                    connection.close()
                    prepare(on: here)
                }
                return
            } catch let failure as FunctionConnection.Failure {
                connection.close()
                guard reused, !failure.responseStarted, Self.idempotentMethods.contains(request.method) else {
                    throw failure.underlying
                }
                (connection, reused) = (try await open(on: here), false)
            }
        }
    }

    /// Closes every connection, and makes no more ahead. Idempotent.
    func close() async {
        _ = closed.setOnce()
        kept.take()?.close()
        if let made = next.take() { (try? await made.value)?.close() }
    }

    /// The kept connection, or the one made ahead, or a new one. The first two count as reused: the function
    /// may have closed them while they waited. A kept connection on another event loop than the caller's
    /// (`here`) is still used, but after `callsBeforeMove` such calls in a row it is closed and a new one made on
    /// the caller's loop: one caller (a proxy, a benchmark) keeps its connection, and so its loop, while callers
    /// that alternate between loops do not make the instance reconnect on every call. (Closed before the new
    /// one is made, for servers that take one connection at a time.)
    private func take(here: EventLoop?) async throws -> (FunctionConnection, reused: Bool) {
        if let connection = kept.take() {
            if connection.isFresh(maxIdle: Self.keepAliveIdle) {
                guard let here, connection.eventLoop !== here else {
                    callsAway.store(0, ordering: .relaxed)
                    return (connection, true)
                }
                guard callsAway.wrappingAdd(1, ordering: .relaxed).newValue >= Self.callsBeforeMove else {
                    return (connection, true)
                }
                callsAway.store(0, ordering: .relaxed)
            }
            connection.close()
        }
        if let made = next.take(), let connection = try? await made.value {
            if connection.isFresh(maxIdle: Self.preparedIdle) { return (connection, true) }
            connection.close()
        }
        return (try await open(on: here), false)
    }

    /// Connects for the next request now: it then does not wait for the setns(2), connect(2) and the channel's
    /// registration. Not taken within `preparedIdle`, it is closed, which gives the function back what the
    /// connection holds (hello-web's server keeps a forked shell waiting on it): an idle instance holds none.
    private func prepare(on loop: EventLoop?) {
        let made = next.withLock { next -> Task<FunctionConnection, any Error>? in
            guard next == nil, !closed.isSet else { return nil }
            next = Task { try await self.open(on: loop) }
            return next
        }
        guard let made else { return }
        (loop ?? group.next()).scheduleTask(in: Self.preparedIdle.timeAmount) {
            let unused = self.next.withLock { next in
                guard next == made else { return false }
                next = nil
                return true
            }
            if unused { Task { (try? await made.value)?.close() } }
        }
    }

    /// A new connection to :9000, its I/O on `loop` (by default the current event loop, else any).
    private func open(on loop: EventLoop? = nil) async throws -> FunctionConnection {
        let socket = try connect()
        return try await FunctionConnection.open(
            socket, on: loop ?? MultiThreadedEventLoopGroup.currentEventLoop ?? group.next())
    }

    private func keep(_ connection: FunctionConnection) {
        let extra = kept.withLock { c -> FunctionConnection? in
            if closed.isSet { return connection }
            defer { c = connection }
            return c
        }
        extra?.close()
    }
}
