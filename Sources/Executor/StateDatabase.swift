import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// The service's durable state: one SQLite database in WAL mode under the state dir, holding the deployed
/// functions, the async event queue with each event's result, the dead letters, and the invocation logs.
/// Every call runs on GRDB's own threads, never on the cooperative pool.
public final class StateDatabase: Sendable {
    let pool: DatabasePool

    /// Opens (creating or migrating) the database at `path`.
    public init(path: String) throws(ServiceError) {
        var configuration = Configuration()
        // WAL with synchronous=NORMAL: a committed transaction survives the process being killed (kill -9);
        // only a power loss can take the last ones back.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        configuration.busyMode = .timeout(5)
        // Functions' environments (secrets, often) live here: owner only. SQLite gives its -wal and -shm files
        // the database file's mode, so it is made 0600 before SQLite opens it.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        chmod(path, 0o600)
        for suffix in ["-wal", "-shm"] { chmod(path + suffix, 0o600) }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch { throw .database("open \(path)", "\(error)") }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE functions(name TEXT PRIMARY KEY, spec TEXT NOT NULL, updatedAt REAL NOT NULL);
                    CREATE TABLE events(
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        requestId TEXT NOT NULL UNIQUE,
                        function TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        notBefore REAL NOT NULL,
                        enqueuedAt REAL NOT NULL,
                        finishedAt REAL,
                        result TEXT);
                    CREATE INDEX events_due ON events(function, state, notBefore);
                    CREATE TABLE dead_letters(
                        requestId TEXT PRIMARY KEY, function TEXT NOT NULL, payload BLOB NOT NULL,
                        attempts INTEGER NOT NULL, reason TEXT NOT NULL, result TEXT, diedAt REAL NOT NULL);
                    CREATE TABLE logs(
                        id INTEGER PRIMARY KEY AUTOINCREMENT, requestId TEXT NOT NULL, function TEXT NOT NULL,
                        at REAL NOT NULL, text TEXT NOT NULL);
                    CREATE INDEX logs_by_request ON logs(function, requestId);
                    CREATE INDEX logs_by_time ON logs(function, at);
                    """)
        }
        // Each function's range of host ids for root in its image, never reused: files a deleted function left
        // in a mount stay out of reach of the next one.
        migrator.registerMigration("v2-idranges") { db in
            try db.execute(sql: "CREATE TABLE idranges(name TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE)")
        }
        // Each log's size, in an index that covers it: the log store's caps are summed without reading the logs.
        migrator.registerMigration("v3-logbytes") { db in
            try db.execute(
                sql: """
                    ALTER TABLE logs ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
                    UPDATE logs SET bytes = length(CAST(text AS BLOB));
                    CREATE INDEX logs_bytes ON logs(function, id, bytes);
                    """)
        }
        return migrator
    }

    func write<T: Sendable>(_ what: String, _ body: @Sendable @escaping (Database) throws -> T) async throws(ServiceError) -> T {
        do { return try await pool.write(body) } catch { throw .database(what, "\(error)") }
    }

    func read<T: Sendable>(_ what: String, _ body: @Sendable @escaping (Database) throws -> T) async throws(ServiceError) -> T {
        do { return try await pool.read(body) } catch { throw .database(what, "\(error)") }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: functions

    func saveFunction(_ name: String, _ spec: FunctionSpec) async throws(ServiceError) {
        let json = String(decoding: try! JSONEncoder().encode(spec), as: UTF8.self)
        try await write("save function \(name)") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO functions(name, spec, updatedAt) VALUES (?, ?, ?)",
                arguments: [name, json, Self.now()])
        }
    }

    func deleteFunction(_ name: String) async throws(ServiceError) {
        try await write("delete function \(name)") { db in
            try db.execute(sql: "DELETE FROM functions WHERE name = ?", arguments: [name])
        }
    }

    func deleteLogs(function name: String) async throws(ServiceError) {
        try await write("delete the logs of \(name)") { db in
            try db.execute(sql: "DELETE FROM logs WHERE function = ?", arguments: [name])
        }
    }

    func functions() async throws(ServiceError) -> [(String, FunctionSpec)] {
        let rows = try await read("list functions") { db in
            try Row.fetchAll(db, sql: "SELECT name, spec FROM functions").map { ($0["name"] as String, $0["spec"] as String) }
        }
        return rows.compactMap { (name, text) in
            guard let spec = try? JSONDecoder().decode(FunctionSpec.self, from: Data(text.utf8)) else { return nil }
            return (name, spec)
        }
    }

    /// The id range slot of `name`: its own since first deployed, or the next free one.
    func idRangeSlot(_ name: String) async throws(ServiceError) -> Int {
        try await write("id range of \(name)") { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO idranges(name, slot) SELECT ?, COALESCE(MAX(slot) + 1, 0) FROM idranges",
                arguments: [name])
            return try Int.fetchOne(db, sql: "SELECT slot FROM idranges WHERE name = ?", arguments: [name]) ?? 0
        }
    }

    // MARK: logs

    func saveLogs(_ entries: [LogEntry]) async throws(ServiceError) {
        try await write("save \(entries.count) invocation logs") { db in
            let statement = try db.cachedStatement(
                sql: "INSERT INTO logs(requestId, function, at, text, bytes) VALUES (?, ?, ?, ?, ?)")
            for entry in entries {
                try statement.execute(arguments: [entry.requestID, entry.function, entry.at, entry.text, entry.text.utf8.count])
            }
        }
    }

    /// The bytes of stored logs, by function.
    func logBytes() async throws(ServiceError) -> [String: Int64] {
        try await read("sum the logs' sizes") { db in
            var out: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT function, SUM(bytes) AS total FROM logs GROUP BY function") {
                out[row["function"]] = row["total"]
            }
            return out
        }
    }

    /// Deletes the oldest logs (of `function`, or of all) until at most `keep` bytes of them are left; returns
    /// how many logs went, and their bytes, by function.
    func trimLogs(function: String?, keep: Int64) async throws(ServiceError) -> [String: (count: Int, bytes: Int64)] {
        try await write("trim the logs") { db in
            let filter = function == nil ? "" : "WHERE function = ?"
            let arguments: StatementArguments = function.map { [$0, keep] } ?? [keep]
            let doomed = """
                SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY id DESC) AS newer FROM logs \(filter)) WHERE newer > ?
                """
            var freed: [String: (count: Int, bytes: Int64)] = [:]
            for row in try Row.fetchAll(
                db,
                sql: "SELECT function, COUNT(*) AS n, SUM(bytes) AS total FROM logs WHERE id IN (\(doomed)) GROUP BY function",
                arguments: arguments)
            {
                freed[row["function"]] = (row["n"], row["total"])
            }
            try db.execute(sql: "DELETE FROM logs WHERE id IN (\(doomed))", arguments: arguments)
            return freed
        }
    }

    func logs(function: String, requestID: String?, limit: Int) async throws(ServiceError) -> [LogEntry] {
        try await read("read logs of \(function)") { db in
            let rows =
                if let requestID {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM logs WHERE function = ? AND requestId = ? ORDER BY id",
                        arguments: [function, requestID])
                } else {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM (SELECT * FROM logs WHERE function = ? ORDER BY at DESC LIMIT ?) ORDER BY at",
                        arguments: [function, limit])
                }
            return rows.map { LogEntry(requestID: $0["requestId"], function: $0["function"], at: $0["at"], text: $0["text"]) }
        }
    }

    /// Deletes logs, finished events and dead letters older than `age`.
    func prune(olderThan age: Duration) async throws(ServiceError) {
        let cutoff = Self.now() - Double(age.components.seconds)
        try await write("prune old records") { db in
            try db.execute(sql: "DELETE FROM logs WHERE at < ?", arguments: [cutoff])
            try db.execute(
                sql: "DELETE FROM events WHERE state IN ('succeeded', 'dead') AND finishedAt < ?", arguments: [cutoff])
            try db.execute(sql: "DELETE FROM dead_letters WHERE diedAt < ?", arguments: [cutoff])
        }
    }
}

/// One invocation's log (START … REPORT, and the Init Report on a cold start), as stored.
public struct LogEntry: Sendable, Codable {
    public let requestID: String
    public let function: String
    /// Unix seconds.
    public let at: Double
    public let text: String
}
