/// The log line formats of the contract (§8). Spacing of `Init Report` is unconfirmed: keep it here only.
public enum LogFormat {
    public static func start(_ requestID: String) -> String { "START RequestId: \(requestID)" }
    public static func end(_ requestID: String) -> String { "END RequestId: \(requestID)" }

    /// One invocation's log: START, the function's output lines, END, REPORT.
    public static func invocation(
        _ requestID: String, output: [String], duration: Duration, memorySizeMB: Int, maxMemoryUsedBytes: Int64?
    ) -> [String] {
        [start(requestID)] + output + [
            end(requestID),
            report(requestID, duration: duration, memorySizeMB: memorySizeMB, maxMemoryUsedBytes: maxMemoryUsedBytes),
        ]
    }

    public static func report(_ requestID: String, duration: Duration, memorySizeMB: Int, maxMemoryUsedBytes: Int64?) -> String {
        let used = maxMemoryUsedBytes.map { String(format1($0.toMB)) } ?? "-"
        return "REPORT RequestId: \(requestID) Duration: \(format1(duration.milliseconds)) ms Billed Duration: "
            + "\(Int(duration.milliseconds.rounded(.up))) ms Memory Size: \(memorySizeMB) MB Max Memory Used: \(used) MB"
    }

    /// Coldstart and its phases; `Overhead` (faasbox's own time between the phases) is added at the end so that
    /// nothing of the cold start is hidden.
    public static func initReport(_ requestID: String, _ t: PhaseTimings) -> String {
        "Init Report RequestId: \(requestID) Coldstart: \(format1(t.coldstart.milliseconds))ms "
            + "PullCode: \(format1(t.pullCode.milliseconds))ms InitRuntime: \(format1(t.initRuntime.milliseconds))ms "
            + "InitFunction: \(format1(t.initFunction.milliseconds))ms Overhead: \(format1(t.overhead.milliseconds))ms"
    }

    /// The same fields for an instance started in advance (provisioned), named by its instance id (no request
    /// started it). The exact form is unconfirmed (contract §8): kept here only.
    public static func provisionedReport(_ instanceID: String, _ t: PhaseTimings) -> String {
        "Provisioned Report InstanceId: \(instanceID)" + initReport("", t).dropFirst("Init Report RequestId: ".count)
    }

    /// One decimal place: the report lines have 0.1 ms resolution.
    public static func format1(_ value: Double) -> String {
        let tenths = Int64((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
