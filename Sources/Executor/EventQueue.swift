import Bootstrap
import Foundation
import GRDB

/// How the async queue keeps, retries and gives up on events (contract §5).
public struct AsyncPolicy: Sendable {
    public var retention = SCFContract.asyncRetention
    public var queueLimit = SCFContract.asyncQueueLimit
    /// Tries after the first for an event whose invocation failed.
    public var maxRetries = SCFContract.asyncMaxRetries
    /// The wait before the first retry; it doubles for each one after.
    public var retryBackoff: Duration = .seconds(1)
    /// The wait before an event refused for concurrency (432) is offered again.
    public var throttleBackoff: Duration = .milliseconds(200)

    public init() {}

    func backoff(afterAttempt attempt: Int) -> Duration { retryBackoff * (1 << max(0, min(attempt - 1, 20))) }

    /// Whether another try could succeed: not for an event the function can never take.
    static func isRetryable(_ code: Int) -> Bool {
        ![SCFContract.ErrorCode.invalidParameter.rawValue, SCFContract.ErrorCode.requestTooLarge.rawValue].contains(code)
    }
}

/// One event taken from the queue to run.
struct QueuedEvent: Sendable {
    let requestID: String
    let function: String
    let payload: [UInt8]
    /// Tries so far, this one included.
    let attempt: Int
}

/// The durable per-function queues of async events. An event is in the database before `enqueue` returns;
/// `claim` marks events running (a faasbox that dies leaves them so, and `recover` puts them back: at least
/// once); each ends succeeded, or dead after its last try, with a row in `dead_letters`.
public actor EventQueue {
    let db: StateDatabase
    public let policy: AsyncPolicy
    /// Queued and running events per function.
    private var depths: [String: Int] = [:]

    init(db: StateDatabase, policy: AsyncPolicy) async throws(ServiceError) {
        self.db = db
        self.policy = policy
        depths = try await db.read("count queued events") { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT function, COUNT(*) AS n FROM events WHERE state IN ('queued', 'running') GROUP BY function")
            return Dictionary(uniqueKeysWithValues: rows.map { ($0["function"] as String, $0["n"] as Int) })
        }
    }

    /// Puts back the events a dead faasbox left running; returns how many.
    func recover() async throws(ServiceError) -> Int {
        try await db.write("requeue running events") { db in
            try db.execute(sql: "UPDATE events SET state = 'queued', notBefore = 0 WHERE state = 'running'")
            return db.changesCount
        }
    }

    /// Stores the event durably; throws `queueFull` when the function's queue is at its limit.
    func enqueue(function: String, requestID: String, payload: [UInt8]) async throws(ServiceError) {
        let depth = depths[function, default: 0]
        guard depth < policy.queueLimit else { throw .queueFull(function: function, limit: policy.queueLimit) }
        depths[function] = depth + 1
        let now = StateDatabase.now()
        do {
            try await db.write("enqueue event \(requestID)") { db in
                try db.execute(
                    sql:
                        "INSERT INTO events(requestId, function, payload, state, notBefore, enqueuedAt) VALUES (?, ?, ?, 'queued', ?, ?)",
                    arguments: [requestID, function, Data(payload), now, now])
            }
        } catch {
            depths[function, default: 1] -= 1
            throw error
        }
    }

    /// Marks up to `limit` due events of `function` running and returns them, oldest first.
    func claim(function: String, limit: Int) async throws(ServiceError) -> [QueuedEvent] {
        guard limit > 0 else { return [] }
        let now = StateDatabase.now()
        return try await db.write("claim events of \(function)") { db in
            let rows = try Row.fetchAll(
                db,
                sql:
                    "SELECT requestId, payload, attempts FROM events WHERE function = ? AND state = 'queued' AND notBefore <= ? ORDER BY seq LIMIT ?",
                arguments: [function, now, limit])
            let update = try db.cachedStatement(
                sql: "UPDATE events SET state = 'running', attempts = attempts + 1 WHERE requestId = ?")
            return try rows.map { row in
                let id: String = row["requestId"]
                try update.execute(arguments: [id])
                let payload: Data = row["payload"]
                return QueuedEvent(requestID: id, function: function, payload: [UInt8](payload), attempt: row["attempts"] + 1)
            }
        }
    }

    /// Records how `event`'s try ended: done, offered again later, or dead after its last try.
    func finish(_ event: QueuedEvent, result: InvokeResult) async throws(ServiceError) {
        let json = String(decoding: try! JSONEncoder().encode(result), as: UTF8.self)
        let now = StateDatabase.now()
        let throttled = result.invokeResult == SCFContract.ErrorCode.concurrencyLimitExceeded.rawValue
        if result.succeeded {
            try await setState(event, "state = 'succeeded', finishedAt = ?, result = ?", [now, json])
        } else if throttled {
            let notBefore = now + policy.throttleBackoff.seconds
            try await setState(event, "state = 'queued', attempts = attempts - 1, notBefore = ?", [notBefore])
            return
        } else if event.attempt <= policy.maxRetries && AsyncPolicy.isRetryable(result.invokeResult) {
            let notBefore = now + policy.backoff(afterAttempt: event.attempt).seconds
            try await setState(event, "state = 'queued', notBefore = ?, result = ?", [notBefore, json])
            return
        } else {
            try await deadLetter(event.requestID, reason: "failed after \(event.attempt) tries", result: json)
        }
        depths[event.function, default: 1] -= 1
    }

    private func setState(_ event: QueuedEvent, _ assignments: String, _ values: [(any DatabaseValueConvertible)?])
        async throws(ServiceError)
    {
        let arguments = StatementArguments(values + [event.requestID])
        try await db.write("update event \(event.requestID)") { db in
            try db.execute(sql: "UPDATE events SET \(assignments) WHERE requestId = ?", arguments: arguments)
        }
    }

    private func deadLetter(_ requestID: String, reason: String, result: String?) async throws(ServiceError) {
        let now = StateDatabase.now()
        try await db.write("dead-letter event \(requestID)") { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO dead_letters(requestId, function, payload, attempts, reason, result, diedAt)
                    SELECT requestId, function, payload, attempts, ?, ?, ? FROM events WHERE requestId = ?
                    """, arguments: [reason, result, now, requestID])
            try db.execute(
                sql: "UPDATE events SET state = 'dead', finishedAt = ?, result = COALESCE(?, result) WHERE requestId = ?",
                arguments: [now, result, requestID])
        }
    }

    /// Moves the queued events older than the retention window to the dead letters; returns how many.
    func expire() async throws(ServiceError) -> Int {
        let cutoff = StateDatabase.now() - policy.retention.seconds
        let expired = try await db.read("find expired events") { db in
            try Row.fetchAll(
                db, sql: "SELECT requestId, function FROM events WHERE state = 'queued' AND enqueuedAt < ?", arguments: [cutoff]
            )
            .map { ($0["requestId"] as String, $0["function"] as String) }
        }
        for (id, function) in expired {
            try await deadLetter(id, reason: "expired after \(Int(policy.retention.seconds)) s in the queue", result: nil)
            depths[function, default: 1] -= 1
        }
        return expired.count
    }

    /// Drops a deleted function's queued events into the dead letters.
    func abandon(function: String) async throws(ServiceError) {
        // One transaction for the whole queue (100,000 events took 34 s one by one).
        let now = StateDatabase.now()
        try await db.write("dead-letter the events of \(function)") { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO dead_letters(requestId, function, payload, attempts, reason, result, diedAt)
                    SELECT requestId, function, payload, attempts, 'the function was deleted', NULL, ? FROM events
                    WHERE function = ? AND state = 'queued'
                    """, arguments: [now, function])
            try db.execute(
                sql: "UPDATE events SET state = 'dead', finishedAt = ? WHERE function = ? AND state = 'queued'",
                arguments: [now, function])
        }
        depths[function] = nil
    }

    /// The functions with events queued or running.
    var busyFunctions: [String] { depths.filter { $0.value > 0 }.map(\.key) }
    /// Whether `function` has events queued or running.
    func hasEvents(_ function: String) -> Bool { depths[function, default: 0] > 0 }
    /// Queued and running events per function.
    var depthByFunction: [String: Int] { depths }

    /// One event's state, tries and result.
    public struct Status: Codable, Sendable {
        public let requestId: String
        public let function: String
        public let state: String
        public let attempts: Int
        public let result: InvokeResult?
    }

    func status(_ requestID: String) async throws(ServiceError) -> Status? {
        try await db.read("read event \(requestID)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM events WHERE requestId = ?", arguments: [requestID]).map { row in
                let result = (row["result"] as String?).flatMap {
                    try? JSONDecoder().decode(InvokeResult.self, from: Data($0.utf8))
                }
                return Status(
                    requestId: row["requestId"], function: row["function"], state: row["state"], attempts: row["attempts"],
                    result: result)
            }
        }
    }

    /// Events of `function` by state (queued, running, succeeded, dead).
    func counts(function: String) async throws(ServiceError) -> [String: Int] {
        try await db.read("count events of \(function)") { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT state, COUNT(*) AS n FROM events WHERE function = ? GROUP BY state", arguments: [function])
            return Dictionary(uniqueKeysWithValues: rows.map { ($0["state"] as String, $0["n"] as Int) })
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
