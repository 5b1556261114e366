import Foundation
import GRDB
import TestSupport
import Testing

@testable import Executor

/// The durable queue's bulk operations on a real database.
@Suite struct EventQueueTests {
    let state = TestPaths.temporaryDirectory("queue")

    /// Deleting a function with a deep queue moves it to the dead letters in one transaction: 100,000 events
    /// took 34 s one by one.
    @Test func abandoningADeepQueueIsOneTransaction() async throws {
        let db = try StateDatabase(path: "\(state)/faasbox.sqlite")
        try await db.write("fill the queue") { db in
            let statement = try db.makeStatement(
                sql:
                    "INSERT INTO events(requestId, function, payload, state, notBefore, enqueuedAt) VALUES (?, ?, ?, 'queued', 0, 0)"
            )
            for i in 0..<50_000 { try statement.execute(arguments: ["r\(i)", i % 10 == 0 ? "other" : "deep", Data("{}".utf8)]) }
        }
        let queue = try await EventQueue(db: db, policy: AsyncPolicy())
        #expect(await queue.depthByFunction["deep"] == 45_000)
        let clock = ContinuousClock()
        let start = clock.now
        try await queue.abandon(function: "deep")
        let took = clock.now - start
        #expect(took < .seconds(5), "\(took)")
        let (dead, queued, other) = try await db.read("count") { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dead_letters WHERE function = 'deep'") ?? 0,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE function = 'deep' AND state = 'queued'") ?? 0,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE function = 'other' AND state = 'queued'") ?? 0
            )
        }
        #expect(dead == 45_000 && queued == 0, "every event dead-lettered")
        #expect(other == 5_000, "another function's queue is untouched")
        #expect(await queue.depthByFunction["deep"] == nil)
    }
}
