import NIOCore

/// The constants of the SCF contract (shared/scf-contract.md), each in one place.
public enum SCFContract {
    public static let functionPort: UInt16 = 9000
    /// Where image event functions receive their events.
    public static let eventInvokePath = "/event-invoke"
    /// Sync request and response payloads (§6, §7).
    public static let maxSyncPayloadBytes = 6 << 20
    /// Async events, and a job's event (one environment variable) (§4, §6).
    public static let maxAsyncPayloadBytes = 128 << 10
    public static let maxJobEventBytes = 128 << 10
    /// Where a job function finds its event (§4).
    public static let jobEventVariable = "SCF_CUSTOM_CONTAINER_EVENT"
    public static let defaultInitTimeout: Duration = .seconds(30)
    public static let defaultMemoryMB = 128
    public static let memoryRangeMB = 64...3072
    public static let defaultTimeout: Duration = .seconds(3)
    public static let defaultVersion = "$LATEST"
    public static let defaultNamespace = "default"
    public static let userCodeRoot = "/var/user/"
    /// Where `scf_bootstrap` is looked for when the image and the config name no command.
    public static let bootstrapName = "scf_bootstrap"
    public static let bootstrapDirectories = ["/var/user", "/"]

    /// Async invocations (§5): how long an event is kept, how many a function's queue holds, how many times a
    /// failed event is tried again (the retry policy's details are unconfirmed).
    public static let asyncRetention: Duration = .seconds(6 * 3600)
    public static let asyncQueueLimit = 100_000
    public static let asyncMaxRetries = 2

    /// Local stand-ins for the cloud account values SCF passes.
    public static let localRegion = "ap-local"
    public static let localAppID = "1250000000"
    public static let localUIN = "100000000001"
    /// What faasbox passes where SCF passes temporary credentials: there are none locally.
    public static let localCredential = "faasbox-local"

    public enum ErrorCode: Int, Sendable {
        case invalidParameter = 400
        case containerStateExited = 405
        case requestTooLarge = 406
        case responseTooLarge = 407
        case resourceLimit = 429
        case userCodeError = 430
        case concurrencyLimitExceeded = 432
        case timeLimitReached = 433
        case memoryLimitReached = 434
        case userProcessExited = 439
        case internalError = 500
    }

    /// The message SCF gives when the HTTP server never listened (583/41076).
    static func initTimeoutMessage(_ timeout: Duration) -> String {
        let ms = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        return "The request timed out in \(ms)ms. Please confirm your http server have enabled listening on port \(functionPort)."
    }
}

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

extension Duration {
    /// The duration in milliseconds, as a Double.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    /// The duration as NIO's TimeAmount (nanoseconds, saturating).
    var timeAmount: TimeAmount {
        let (seconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .nanoseconds(.max) : .nanoseconds(seconds &+ components.attoseconds / 1_000_000_000)
    }
}

extension Int64 {
    var toMB: Double { Double(self) / 1_048_576 }
}
