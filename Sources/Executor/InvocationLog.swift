import Bootstrap

/// The invocation log: each invocation's lines (START, output, END, REPORT, and the Init Report of a cold
/// start) and each provisioned instance's report, on their way to the database: appended in memory, written in
/// batches of 64 (and by the maintenance loop, every second). Small batches keep a warm call from waiting for
/// a long insert (docs/benchmarks.md, "Warm path").
actor InvocationLog {
    let db: StateDatabase
    private var pending: [LogEntry] = []

    init(db: StateDatabase) { self.db = db }

    func append(_ entry: LogEntry) async {
        pending.append(entry)
        if pending.count >= 64 { await flush() }
    }

    func flush() async {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []
        do { try await db.saveLogs(batch) } catch { pending = batch + pending }
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
