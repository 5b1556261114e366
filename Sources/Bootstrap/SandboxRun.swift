import ImageRuntime
import Sandbox
import SystemSupport

/// One program run to its exit in a bare sandbox over an image's rootfs: no function protocol, no readiness,
/// no instance. What the diagnostics measure and probe with (`faasbox bench` against runc and bwrap,
/// `faasbox doctor --isolation`): composed, spawned, waited for, stopped and removed here, once for all.
public enum SandboxRun {
    public struct Options: Sendable {
        public var environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        /// The sandbox's memory limit (by default the contract's).
        public var memoryMB = SCFContract.defaultMemoryMB
        public var userNamespace: FunctionConfig.UserNamespace?
        /// Run as root in the image (uid and gid 0): as a function whose image's User is root, in a user
        /// namespace (`userNamespace`, or the default range).
        public var asRoot = false
        /// Collect what the program writes to stdout (else it is left unread).
        public var captureStdout = false
        public init() {}
    }

    public struct Result: Sendable {
        /// From the start of the spawn until the program was exec'd (InitRuntime).
        public let initRuntime: Duration
        /// From the start of the spawn until the program exited.
        public let total: Duration
        public let exitStatus: ExitStatus
        /// What the program wrote to stdout, with `captureStdout`.
        public let stdout: [UInt8]
        /// Whether the cgroup's OOM killer struck.
        public let oomKilled: Bool
    }

    /// Runs `program` in a sandbox over a new rootfs of `image` (named `name` in the store's instances) and
    /// removes everything it made before it returns or throws.
    public static func run(
        _ program: [String], image: PulledImage, store: ImageStore, name: String, options: Options = Options()
    ) async throws -> Result {
        let rootfs = try store.composeRootfs(image, instanceID: name)
        defer { _ = rootfs.remove() }
        var spec = SandboxSpec(rootfs: rootfs.path, arguments: program, environment: options.environment, instanceID: name)
        spec.limits.memoryBytes = Int64(options.memoryMB) << 20
        spec.userNamespace = options.userNamespace?.sandbox
        if options.asRoot {
            spec.user = .root
            spec.userNamespace = (options.userNamespace ?? .default).sandbox
        }
        let clock = ContinuousClock()
        let begin = clock.now
        try FunctionInstance.mapRootfsOwners(spec, rootfs: rootfs, image: image, store: store)
        let process = try await Sandbox.spawn(spec)
        let initRuntime = clock.now - begin
        var stdout: [UInt8] = []
        if options.captureStdout {
            let pipe = process.stdout
            stdout = try await runBlocking { () throws(SystemCallError) -> [UInt8] in try pipe.readToEnd() }
        }
        let status = await process.wait()
        let total = clock.now - begin
        let oomKilled = process.cgroup.oomKilled()
        await process.stop()
        return Result(initRuntime: initRuntime, total: total, exitStatus: status, stdout: stdout, oomKilled: oomKilled)
    }
}

/// A network namespace of its own with only `lo` up, for a peer tool to run in (runc joins it by `path`) and
/// to be reached on 127.0.0.1 there. It lives as long as this value.
public final class IsolatedNetwork: Sendable {
    private let namespace: NetworkNamespace

    public init() throws(SandboxError) { namespace = try NetworkNamespace() }

    /// A path other programs can open to join the namespace.
    public var path: String { namespace.path }

    /// A TCP connection to 127.0.0.1:`port` in the namespace; throws ECONNREFUSED while nothing listens.
    public func connect(port: UInt16) throws(SandboxError) -> OwnedFileDescriptor { try namespace.connect(port: port) }
}
