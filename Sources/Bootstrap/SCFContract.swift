/// The constants of the SCF contract (shared/scf-contract.md): its limits, defaults, names and codes. Every
/// other module takes them from here (the log formats are `LogFormat`'s).
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
    public static let memoryStepMB = 64
    public static let defaultTimeout: Duration = .seconds(3)
    /// A function's settings, in seconds where they are times (§5, §7).
    public static let timeoutRangeSeconds = 1...900
    public static let initTimeoutRangeSeconds = 1...300
    public static let concurrencyRange = 1...1000
    public static let defaultConcurrency = 10
    public static let idleTimeoutRangeSeconds = 1...86_400
    public static let defaultIdleTimeoutSeconds = 300
    /// Environment variables, all names and values together (§7, unconfirmed).
    public static let maxEnvironmentBytes = 4096
    public static let defaultVersion = "$LATEST"
    public static let defaultNamespace = "default"
    public static let userCodeRoot = "/var/user/"
    /// Where `scf_bootstrap` is looked for when the image and the config name no command.
    public static let bootstrapName = "scf_bootstrap"
    public static let bootstrapDirectories = ["/var/user", "/"]

    /// Async invocations (§5): how long an event is kept, how many a function's queue holds, how many times a
    /// failed event is tried again (the retry policy's details are unconfirmed).
    public static let asyncRetention: Duration = .seconds(6 * 3600)
    /// SCF ties CPU to memory: an instance's share of a contended CPU is proportional to its memory, 1 GB having
    /// a default cgroup's weight (100) and 128 MB an eighth of it — so that faasbox's own threads, at the
    /// default, stay responsive when functions saturate the CPU.
    public static func cpuWeight(memoryMB: Int) -> Int { max(1, memoryMB * 100 / 1024) }
    /// A function's optional CPU quota, in cores.
    public static let cpusRange = 0.05...64.0

    /// What `LogType: Tail` returns of an invocation's log: its last 4 KB (as SCF's InvokeFunction and Lambda).
    public static let tailLogBytes = 4096
    /// faasbox's bounds on a function's output (docs/limits.md): one line is cut here (the rest of the line
    /// dropped, a marker in its place), and an instance keeps at most this many bytes and lines not yet taken
    /// by an invocation's log (the oldest go first).
    public static let maxOutputLineBytes = 256 << 10
    public static let maxInstanceOutputBytes = 4 << 20
    public static let maxInstanceOutputLines = 10_000
    public static let asyncQueueLimit = 100_000
    public static let asyncMaxRetries = 2

    /// Local stand-ins for the cloud account values SCF passes.
    public static let localRegion = "ap-local"
    public static let localAppID = "1250000000"
    public static let localUIN = "100000000001"
    /// What faasbox passes where SCF passes temporary credentials: there are none locally.
    public static let localCredential = "faasbox-local"

    /// The variables faasbox sets for every function (§4): a caller may not set them
    /// (`InvalidParameterValue.EnvironmentSystemProtect`). Every `SCF_*` name, and these.
    public static let systemVariables: Set<String> = [
        "_HANDLER", "USER_CODE_ROOT", "TENCENTCLOUD_RUNENV", "TENCENTCLOUD_REGION", "TENCENTCLOUD_APPID", "TENCENTCLOUD_UIN",
    ]

    public static func isSystemVariable(_ name: String) -> Bool { name.hasPrefix("SCF_") || systemVariables.contains(name) }

    /// How long an instance stays idle before its program is frozen (docs/limits.md, "CPU").
    public static let defaultFreezeIdleAfter: Duration = .milliseconds(50)

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
        /// The function answered, but not with an HTTP/1.1 response faasbox can relay (one its parser refuses,
        /// or `101 Switching Protocols`): a reverse proxy's bad gateway, with the reason.
        case badGateway = 502
    }

    /// The message SCF gives when the HTTP server never listened (583/41076).
    static func initTimeoutMessage(_ timeout: Duration) -> String {
        let ms = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        return "The request timed out in \(ms)ms. Please confirm your http server have enabled listening on port \(functionPort)."
    }
}
