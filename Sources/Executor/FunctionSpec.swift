import Bootstrap
import Foundation

/// A deployed function's configuration as the API takes it (`PUT /functions/{name}`, `faasbox deploy`) and
/// the state database keeps it. Field names follow the DESIGN's API; `validated(name:)` checks every field
/// against the contract's limits and names the field it refuses.
public struct FunctionSpec: Codable, Sendable, Equatable {
    /// The OCI archive (a path on the server's host) the function's instances run.
    public var image: String
    public var type: String?
    public var memorySize: Int?
    /// A CPU quota in cores (0.05–64); by default none, only a share of the CPU in proportion to the memory.
    public var cpus: Double?
    /// Seconds.
    public var timeout: Int?
    /// Seconds until the function must be ready.
    public var initTimeout: Int?
    /// How many invocations may run at once (one per instance).
    public var concurrency: Int?
    /// Instances started at deploy and kept warm.
    public var provisioned: Int?
    /// Seconds an idle instance is kept before it is stopped.
    public var idleTimeout: Int?
    public var env: [String: String]?
    public var command: [String]?
    public var args: [String]?
    /// "isolated" (default: a network namespace with only loopback) or "host".
    public var network: String?
    /// Host directories made visible inside the instances (SCF's file-system mounts).
    public var mounts: [MountSpec]?
    /// `/web/{name}/…` on the TCP listener answers without a signature (SCF's function URL with AuthType NONE).
    public var `public`: Bool?

    public struct MountSpec: Codable, Sendable, Equatable {
        public var source: String
        public var target: String
        public var readOnly: Bool?
        public init(source: String, target: String, readOnly: Bool? = nil) {
            self.source = source
            self.target = target
            self.readOnly = readOnly
        }
    }

    public init(image: String, type: String? = nil) {
        self.image = image
        self.type = type
    }

    /// A field the spec refuses, and why; `code` is the TencentCloud error code it answers with.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let field: String
        public let reason: String
        public var code = "InvalidParameterValue"
        public var description: String { "\(field): \(reason)" }
        public init(field: String, reason: String, code: String = "InvalidParameterValue") {
            self.field = field
            self.reason = reason
            self.code = code
        }
    }

    /// The spec as the pool runs it, or the first field that is out of bounds.
    public func validated(name: String) throws(Invalid) -> Validated {
        try Self.checkName(name)
        var config = FunctionConfig(name: name)
        config.kind = try Self.field("type", type ?? "web") { FunctionConfig.Kind(rawValue: $0) }
        config.memoryMB = try Self.memory(memorySize ?? SCFContract.defaultMemoryMB)
        if let cpus {
            guard SCFContract.cpusRange.contains(cpus) else {
                throw Invalid(
                    field: "cpus",
                    reason: "\(cpus) is outside \(SCFContract.cpusRange.lowerBound)–\(SCFContract.cpusRange.upperBound) cores")
            }
            config.cpus = cpus
        }
        let defaultTimeout = Int(SCFContract.defaultTimeout.components.seconds)
        config.timeout = .seconds(try Self.bounded("timeout", timeout ?? defaultTimeout, SCFContract.timeoutRangeSeconds))
        let defaultInit = Int(SCFContract.defaultInitTimeout.components.seconds)
        config.initTimeout = .seconds(
            try Self.bounded("initTimeout", initTimeout ?? defaultInit, SCFContract.initTimeoutRangeSeconds))
        config.environment = try Self.environment(env ?? [:])
        config.command = try Self.withoutNUL("command", Self.nonEmpty("command", command))
        config.arguments = try Self.withoutNUL("args", args)
        config.hostNetwork = try Self.field("network", network ?? "isolated") { ["isolated": false, "host": true][$0] }
        config.mounts = try (mounts ?? []).map(Self.mount)
        let limit = try Self.bounded("concurrency", concurrency ?? SCFContract.defaultConcurrency, SCFContract.concurrencyRange)
        let provisioned = try Self.bounded("provisioned", provisioned ?? 0, 0...limit)
        if config.kind == .job && provisioned > 0 {
            throw Invalid(field: "provisioned", reason: "a job function runs one instance per event; it cannot be provisioned")
        }
        let idle = try Self.bounded(
            "idleTimeout", idleTimeout ?? SCFContract.defaultIdleTimeoutSeconds, SCFContract.idleTimeoutRangeSeconds)
        if image.isEmpty { throw Invalid(field: "image", reason: "must name an OCI archive") }
        return Validated(
            name: name, image: image, config: config, concurrency: limit, provisioned: provisioned,
            idleTimeout: .seconds(idle))
    }

    /// What a valid spec becomes.
    public struct Validated: Sendable {
        public let name: String
        public let image: String
        public let config: FunctionConfig
        public let concurrency: Int
        public let provisioned: Int
        public let idleTimeout: Duration

        /// The same function with its image and config as the host admits them (HostPolicy).
        func with(image: String, config: FunctionConfig) -> Validated {
            Validated(
                name: name, image: image, config: config, concurrency: concurrency, provisioned: provisioned,
                idleTimeout: idleTimeout)
        }
    }

    /// SCF's rule: 2–60 characters, letters, digits, `-` and `_`, starting with a letter, not ending with `-`/`_`.
    public static func checkName(_ name: String) throws(Invalid) {
        let allowed = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        guard (2...60).contains(name.count), allowed, name.first!.isLetter, name.last != "-", name.last != "_" else {
            throw Invalid(
                field: "name",
                reason: "\"\(name)\" must be 2–60 letters, digits, - or _, start with a letter and not end with - or _")
        }
    }

    static func memory(_ mb: Int) throws(Invalid) -> Int {
        guard SCFContract.memoryRangeMB.contains(mb), mb % SCFContract.memoryStepMB == 0 else {
            throw Invalid(
                field: "memorySize",
                reason: "must be \(SCFContract.memoryRangeMB.lowerBound)–\(SCFContract.memoryRangeMB.upperBound) MB "
                    + "in steps of \(SCFContract.memoryStepMB) (got \(mb))")
        }
        return mb
    }

    static func bounded(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws(Invalid) -> Int {
        guard range.contains(value) else {
            throw Invalid(field: field, reason: "must be \(range.lowerBound)–\(range.upperBound) (got \(value))")
        }
        return value
    }

    static func field<T>(_ field: String, _ value: String, _ parse: (String) -> T?) throws(Invalid) -> T {
        guard let parsed = parse(value) else {
            throw Invalid(field: field, reason: "\"\(value)\" is not one of the allowed values")
        }
        return parsed
    }

    static func nonEmpty(_ field: String, _ value: [String]?) throws(Invalid) -> [String]? {
        if let value, value.isEmpty || value[0].isEmpty {
            throw Invalid(field: field, reason: "must name a program (or be left out to use the image's)")
        }
        return value
    }

    /// Program and arguments reach execve(2) as C strings: a NUL would cut one short without a word.
    static func withoutNUL(_ field: String, _ value: [String]?) throws(Invalid) -> [String]? {
        if let index = value?.firstIndex(where: { $0.utf8.contains(0) }) {
            throw Invalid(field: field, reason: "item \(index) contains a NUL byte, which would cut it short")
        }
        return value
    }

    static func environment(_ env: [String: String]) throws(Invalid) -> [String: String] {
        for key in env.keys.sorted() {
            let valid =
                key.first.map { $0.isLetter || $0 == "_" } == true
                && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            if !valid { throw Invalid(field: "env", reason: "\"\(key)\" is not a valid variable name") }
            if SCFContract.isSystemVariable(key) {
                throw Invalid(
                    field: "env", reason: "\"\(key)\" is set by faasbox for every function and cannot be set by the caller",
                    code: "InvalidParameterValue.EnvironmentSystemProtect")
            }
        }
        if let key = env.keys.sorted().first(where: { env[$0]!.utf8.contains(0) }) {
            throw Invalid(field: "env", reason: "the value of \"\(key)\" contains a NUL byte, which would cut it short")
        }
        let size = env.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if size > SCFContract.maxEnvironmentBytes {
            throw Invalid(field: "env", reason: "\(size) bytes in all, over the limit of \(SCFContract.maxEnvironmentBytes)")
        }
        return env
    }

    static func mount(_ mount: MountSpec) throws(Invalid) -> FunctionConfig.Mount {
        guard mount.source.hasPrefix("/"), mount.target.hasPrefix("/"), !mount.target.split(separator: "/").contains("..")
        else { throw Invalid(field: "mounts", reason: "source and target must be absolute paths without '..'") }
        if let reason = FunctionConfig.Mount.refusedTarget(mount.target) {
            throw Invalid(field: "mounts", reason: "target \(mount.target) \(reason)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mount.source, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Invalid(field: "mounts", reason: "\(mount.source) is not a directory on this host")
        }
        return FunctionConfig.Mount(source: mount.source, target: mount.target, readOnly: mount.readOnly ?? true)
    }
}
