/// How one function runs: a value with the contract's defaults.
public struct FunctionConfig: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case web, event, job }

    public var name: String
    public var kind: Kind = .web
    public var memoryMB = SCFContract.defaultMemoryMB
    /// A CPU quota in cores (cpu.max); nil: none, only the share that goes with the memory.
    public var cpus: Double?
    public var timeout = SCFContract.defaultTimeout
    public var initTimeout = SCFContract.defaultInitTimeout
    /// The user's environment variables, added after the contract's.
    public var environment: [String: String] = [:]
    /// Overrides the image's Entrypoint (and, with `arguments`, its Cmd).
    public var command: [String]?
    public var arguments: [String]?
    public var hostNetwork = false
    /// Host directories bound into the instances (read-only unless a mount says otherwise).
    public var mounts: [Mount] = []
    /// Run the instances in a user namespace of their own (nil: none; faasbox runs as root).
    public var userNamespace: UserNamespace?
    /// The user namespace an instance gets when its image's user is root (uid or gid 0) and `userNamespace`
    /// is nil: root in the image is never root on the host. The service gives each function a range of its own.
    public var rootUserNamespace = UserNamespace.default
    /// The seccomp filter of the instances (nil: none); the default is modelled on Docker's.
    public var seccomp: SeccompPolicy? = .default
    /// `_HANDLER` for custom runtimes (SCF's default handler name).
    public var handler = "index.main_handler"
    /// SIGTERM, then this long for the instance to exit before SIGKILL, when an instance is stopped.
    public var stopGrace: Duration = .seconds(2)
    /// Freeze an instance's program once it has been idle this long (`FunctionInstance.suspend`): an idle
    /// instance then spends no CPU, whatever it left running; the next invocation thaws it. nil: never. The
    /// short wait spares back-to-back calls a freeze and a thaw each.
    public var freezeIdleAfter: Duration? = SCFContract.defaultFreezeIdleAfter
    public var version = SCFContract.defaultVersion
    public var namespace = SCFContract.defaultNamespace

    public init(name: String) { self.name = name }

    /// A host directory bound at `target` (an absolute path inside the instance), read-only unless asked.
    public struct Mount: Sendable, Equatable {
        public var source: String
        public var target: String
        public var readOnly: Bool
        /// The operator's directory the source must stay beneath, checked again at every cold start (nil: the
        /// operator named the source itself, `faasbox run --mount`).
        public var within: String?
        public init(source: String, target: String, readOnly: Bool = true, within: String? = nil) {
            self.source = source
            self.target = target
            self.readOnly = readOnly
            self.within = within
        }
    }

    /// Ids 0..<count inside the instance are host ids hostID..<hostID+count (users and groups alike).
    public struct UserNamespace: Sendable, Equatable {
        public var hostID: UInt32
        public var count: UInt32
        public init(hostID: UInt32, count: UInt32 = 65_536) {
            self.hostID = hostID
            self.count = count
        }
        /// The range /etc/subuid conventionally gives root's containers.
        public static let `default` = UserNamespace(hostID: 100_000)
    }

    /// The environment SCF gives a function (§4; `runtime` adds the runtime API's and the job's variables),
    /// then the image's, then the user's.
    func environment(imageEnv: [String], runtime: [(String, String)] = []) -> [String] {
        var env: [(String, String)] =
            runtime + [
                ("SCF_FUNCTIONNAME", name), ("SCF_FUNCTIONVERSION", version), ("SCF_NAMESPACE", namespace),
                ("TENCENTCLOUD_REGION", SCFContract.localRegion), ("TENCENTCLOUD_APPID", SCFContract.localAppID),
                ("TENCENTCLOUD_UIN", SCFContract.localUIN), ("TENCENTCLOUD_RUNENV", "SCF"),
                ("USER_CODE_ROOT", SCFContract.userCodeRoot), ("SCF_FUNCTIONMEMORYSIZE", "\(memoryMB)"),
                ("SCF_FUNCTIONTIMEOUT", "\(timeout.components.seconds)"), ("_HANDLER", handler),
            ]
        for entry in imageEnv {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            env.append((String(entry[..<eq]), String(entry[entry.index(after: eq)...])))
        }
        for key in environment.keys.sorted() { env.append((key, environment[key]!)) }
        if !env.contains(where: { $0.0 == "PATH" }) {
            env.append(("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        }
        // Later definitions win, in the order above.
        var seen = Set<String>()
        return env.reversed().filter { seen.insert($0.0).inserted }.reversed().map { "\($0.0)=\($0.1)" }
    }
}
