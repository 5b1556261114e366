import Bootstrap

/// The bounds of the log store (docs/limits.md): what one invocation's log keeps, what the logs of one function
/// and of all may take in the database (past either, the oldest go), what may wait in memory for the database,
/// and the free space of the state dir's filesystem below which logs are not written at all (cold starts,
/// which need a little of it, still work; on a filesystem smaller than ten times it, a tenth of its size).
public struct LogLimits: Sendable {
    public var entryBytes = 1 << 20
    public var functionBytes: Int64 = 64 << 20
    public var totalBytes: Int64 = 512 << 20
    public var pendingBytes = 64 << 20
    public var freeSpaceReserve: Int64 = 64 << 20
    public init() {}
}

/// The invocation log: each invocation's lines (START, output, END, REPORT, and the Init Report of a cold
/// start) and each provisioned instance's report, on their way to the database: appended in memory, written in
/// batches of 64 (and by the maintenance loop, every second). Small batches keep a warm call from waiting for
/// a long insert (docs/benchmarks.md, "Warm path"). Bounded by `LogLimits`; what it drops is counted
/// (`faasbox_logs_dropped_total`) and said once in faasbox's own log.
actor InvocationLog {
    let db: StateDatabase
    let limits: LogLimits
    private let dropped: @Sendable (_ function: String, _ reason: String, _ count: Int) -> Void
    private let report: @Sendable (String) -> Void
    private var pending: [LogEntry] = []
    private var pendingBytes = 0
    /// The stored logs' bytes by function: read from the database once, then kept up to date.
    private var stored: [String: Int64]?
    /// Why logs are not being written now (free space below the reserve), or nil.
    private(set) var paused: String?
    private var reported: Set<String> = []

    init(
        db: StateDatabase, limits: LogLimits = LogLimits(),
        dropped: @escaping @Sendable (String, String, Int) -> Void = { _, _, _ in },
        report: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.db = db
        self.limits = limits
        self.dropped = dropped
        self.report = report
    }

    func append(_ entry: LogEntry) async {
        if paused != nil {
            dropped(entry.function, "disk-reserve", 1)
            return
        }
        let entry = Self.bounded(entry, to: limits.entryBytes)
        pending.append(entry)
        pendingBytes += entry.text.utf8.count
        while pendingBytes > limits.pendingBytes, pending.count > 1 {
            let old = pending.removeFirst()
            pendingBytes -= old.text.utf8.count
            dropped(old.function, "backlog", 1)
            once("backlog", "invocation logs wait for the database past \(limits.pendingBytes) bytes: the oldest are dropped")
        }
        if pending.count >= 64 { await flush() }
    }

    /// Says `message` in faasbox's log the first time `key` happens.
    private func once(_ key: String, _ message: String) {
        if reported.insert(key).inserted { report(message) }
    }

    /// Pauses (with the reason) or resumes writing; what waits is dropped on pausing.
    func setPaused(_ reason: String?) {
        if let reason, paused == nil {
            report("invocation logs are not being stored: \(reason)")
            for entry in pending { dropped(entry.function, "disk-reserve", 1) }
            pending = []
            pendingBytes = 0
        } else if reason == nil, let was = paused {
            report("invocation logs are stored again (was: \(was))")
        }
        paused = reason
    }

    func flush() async {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []
        pendingBytes = 0
        var saved = batch
        do { try await db.saveLogs(batch) } catch {
            // One by one: an entry the database refuses is dropped and counted, never tried again.
            saved = []
            for entry in batch {
                do {
                    try await db.saveLogs([entry])
                    saved.append(entry)
                } catch {
                    dropped(entry.function, "error", 1)
                    once("error", "an invocation log could not be stored and was dropped: \(error)")
                }
            }
        }
        await account(saved)
    }

    /// Adds what was saved to the sums and trims a function, or all, past its cap.
    private func account(_ saved: [LogEntry]) async {
        if stored == nil { stored = try? await db.logBytes() }
        guard var sums = stored else { return }
        for entry in saved { sums[entry.function, default: 0] += Int64(entry.text.utf8.count) }
        for (function, bytes) in sums where bytes > limits.functionBytes {
            if let trimmed = try? await db.trimLogs(function: function, keep: limits.functionBytes * 9 / 10) {
                for (name, gone) in trimmed {
                    sums[name, default: 0] -= gone.bytes
                    dropped(name, "function-cap", gone.count)
                }
            }
        }
        if sums.values.reduce(0, +) > limits.totalBytes,
            let trimmed = try? await db.trimLogs(function: nil, keep: limits.totalBytes * 9 / 10)
        {
            for (name, gone) in trimmed {
                sums[name, default: 0] -= gone.bytes
                dropped(name, "total-cap", gone.count)
            }
        }
        stored = sums.filter { $0.value > 0 }
    }

    /// Forgets the sums (after records were deleted behind the log's back: a function removed, old logs pruned).
    func recount() { stored = nil }

    /// An entry whose text is over `limit` bytes keeps its beginning and its end (START, and END, REPORT and
    /// the Init Report), with a line that says how much went between.
    static func bounded(_ entry: LogEntry, to limit: Int) -> LogEntry {
        let count = entry.text.utf8.count
        guard count > limit else { return entry }
        let keep = max(0, limit / 2 - 64)
        let (head, tail) = (entry.text.utf8Prefix(keep), entry.text.utf8Suffix(keep))
        let cut = count - head.utf8.count - tail.utf8.count
        let text = head + "\n[faasbox: \(cut) bytes of this log dropped]\n" + tail
        return LogEntry(requestID: entry.requestID, function: entry.function, at: entry.at, text: text)
    }
}

extension String {
    /// The longest beginning of at most `bytes` UTF-8 bytes that ends at a character boundary.
    func utf8Prefix(_ bytes: Int) -> String {
        let utf8 = self.utf8
        guard utf8.count > bytes else { return self }
        var end = utf8.index(utf8.startIndex, offsetBy: bytes)
        while end > utf8.startIndex && UTF8.isContinuation(utf8[end]) { end = utf8.index(before: end) }
        return String(decoding: utf8[..<end], as: UTF8.self)
    }

    /// The longest end of at most `bytes` UTF-8 bytes that starts at a character boundary.
    func utf8Suffix(_ bytes: Int) -> String {
        let utf8 = self.utf8
        guard utf8.count > bytes else { return self }
        var start = utf8.index(utf8.endIndex, offsetBy: -bytes)
        while start < utf8.endIndex && UTF8.isContinuation(utf8[start]) { start = utf8.index(after: start) }
        return String(decoding: utf8[start...], as: UTF8.self)
    }
}

extension InvocationLog {
    /// The log of one invocation, as stored and as `X-Scf-Log-Type: Tail` returns it.
    static func text(of outcome: FunctionPool.Outcome, memoryMB: Int) -> String {
        var output = outcome.logLines
        if case .failure(let error) = outcome.result { output.append("Invoke failed (\(error.code.rawValue)): \(error)") }
        var lines = LogFormat.invocation(
            outcome.requestID, output: output, duration: outcome.duration, memorySizeMB: memoryMB,
            maxMemoryUsedBytes: outcome.maxMemoryUsedBytes)
        if let cold = outcome.coldStart { lines.append(LogFormat.initReport(outcome.requestID, cold)) }
        return lines.joined(separator: "\n")
    }
}

/// An instance started in advance (provisioned): its id and cold-start phases.
public struct ProvisionedReport: Sendable {
    public let instanceID: String
    public let timings: PhaseTimings

    /// Its `Provisioned Report` log line.
    public var line: String { LogFormat.provisionedReport(instanceID, timings) }
}
