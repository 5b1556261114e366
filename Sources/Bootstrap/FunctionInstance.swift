import Foundation
import ImageRuntime
import Logging
import NIOCore
import NIOPosix
import Sandbox
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One function instance: an image's rootfs, a sandbox running its bootstrap, and the way to talk to it.
/// `stop()` is its one teardown path (kills every process, removes cgroup, mounts and directories).
public final class FunctionInstance: Sendable {
    public let id: String
    public let config: FunctionConfig
    public let timings: PhaseTimings
    public let output: OutputCollector
    public let process: SandboxProcess
    public let rootfs: InstanceRootfs
    private let group: EventLoopGroup
    private let stopped = AtomicFlag()

    init(
        id: String, config: FunctionConfig, timings: PhaseTimings, output: OutputCollector, process: SandboxProcess,
        rootfs: InstanceRootfs, group: EventLoopGroup
    ) {
        self.id = id
        self.config = config
        self.timings = timings
        self.output = output
        self.process = process
        self.rootfs = rootfs
        self.group = group
    }

    /// Cold-starts an instance of `image`: PullCode (verify, unpack, compose the rootfs), InitRuntime (the
    /// sandbox up to exec), InitFunction (until port 9000 accepts). On any failure, everything made so far
    /// is torn down before the error is thrown.
    public static func coldStart(
        image reference: String, store: ImageStore, config: FunctionConfig,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "faasbox.bootstrap")
    ) async throws(BootstrapError) -> FunctionInstance {
        let clock = ContinuousClock()
        let begin = clock.now
        var timings = PhaseTimings()
        let id = "fb-" + String(UInt64.random(in: 1 << 60...UInt64.max), radix: 16)

        let image: PulledImage
        let rootfs: InstanceRootfs
        do {
            image = try await store.pull(reference)
            rootfs = try store.composeRootfs(image, instanceID: id)
        } catch { throw .image(error) }
        timings.pullCode = clock.now - begin

        let process: SandboxProcess
        let output = OutputCollector()
        if Task.isCancelled {
            rootfs.remove()
            throw .cancelled
        }
        do {
            let spec = try sandboxSpec(id: id, config: config, image: image, rootfs: rootfs, reference: reference)
            let spawnStart = clock.now
            process = try await Sandbox.spawn(spec)
            timings.initRuntime = clock.now - spawnStart
        } catch {
            rootfs.remove()
            if let e = error as? BootstrapError { throw e }
            throw .sandbox(error as! SandboxError)
        }
        do {
            try await output.attach(stdout: process.stdout, stderr: process.stderr, group: group)
            let execDone = clock.now
            try await waitUntilReady(process, initTimeout: config.initTimeout)
            timings.initFunction = clock.now - execDone
            timings.coldstart = clock.now - begin
        } catch {
            await process.stop()
            rootfs.remove()
            await output.waitForEOF()
            switch error {
            case let e as BootstrapError:
                switch e {
                case .initTimeout(let t, _): throw .initTimeout(t, output: output.text)
                case .exitedDuringInit(let s, _): throw .exitedDuringInit(s, output: output.text)
                default: throw e
                }
            case is CancellationError: throw .cancelled
            default: throw .invocationFailed("\(error)")
            }
        }
        logger.debug("instance ready", metadata: ["instance": "\(id)", "coldstart-ms": "\(timings.coldstart.milliseconds)"])
        return FunctionInstance(
            id: id, config: config, timings: timings, output: output, process: process,
            rootfs: rootfs, group: group)
    }

    private static func sandboxSpec(
        id: String, config: FunctionConfig, image: PulledImage, rootfs: InstanceRootfs,
        reference: String
    ) throws(BootstrapError) -> SandboxSpec {
        let runtime = image.config.config
        let (arguments, cwd) = try BootstrapCommand.resolve(
            config: config, image: runtime, rootfs: rootfs.path,
            imageName: reference)
        var spec = SandboxSpec(
            rootfs: rootfs.path, arguments: arguments,
            environment: config.environment(imageEnv: runtime?.env ?? []), instanceID: id)
        spec.workingDirectory = cwd
        spec.limits.memoryBytes = Int64(config.memoryMB) << 20
        spec.network = config.hostNetwork ? .host : .isolated
        spec.seccomp = config.seccompProfile
        spec.userNamespace = config.userNamespace
        if let user = try ImageUser.resolve(runtime?.user ?? "", rootfs: rootfs.path) { spec.user = user }
        return spec
    }

    /// Polls port 9000 in the instance's network namespace until it accepts, the process exits, or the
    /// init timeout passes. Starts at 0.2 ms between tries and backs off to 5 ms.
    private static func waitUntilReady(_ process: SandboxProcess, initTimeout: Duration) async throws {
        let deadline = ContinuousClock.now + initTimeout
        var pause = Duration.microseconds(200)
        Task { _ = await process.wait() }  // so that an exit is noticed while polling
        while true {
            if let status = process.exitStatus { throw BootstrapError.exitedDuringInit(status, output: "") }
            do {
                _ = try process.connect(port: SCFContract.functionPort)
                return
            } catch {
                guard case .syscall(let e) = error else { throw BootstrapError.sandbox(error) }
                if e.errno == .noSuchProcess { throw BootstrapError.exitedDuringInit(await process.wait(), output: "") }
                if e.errno != .connectionRefused { throw BootstrapError.sandbox(error) }
            }
            if ContinuousClock.now >= deadline { throw BootstrapError.initTimeout(initTimeout, output: "") }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(5))
        }
    }

    /// Forwards an HTTP request to the function's port 9000, with the contract's X-Scf-* headers.
    public func invoke(_ request: HTTPRequest, requestID: String, maxResponseBytes: Int = 6 << 20) async throws(BootstrapError)
        -> HTTPResponse
    {
        let headers = [
            ("X-Scf-Request-Id", requestID), ("X-Scf-Memory", "\(config.memoryMB)"),
            ("X-Scf-Timeout", "\(config.timeout.components.seconds * 1000)"), ("X-Scf-Version", config.version),
            ("X-Scf-Name", config.name), ("X-Scf-Namespace", config.namespace), ("X-Scf-Region", SCFContract.localRegion),
            ("X-Scf-Appid", SCFContract.localAppID), ("X-Scf-Uin", SCFContract.localUIN),
        ]
        do {
            let socket = try process.connect(port: SCFContract.functionPort)
            return try await HTTPForwarder.send(
                request, over: socket, group: group, extraHeaders: headers,
                maxBody: maxResponseBytes)
        } catch let error as BootstrapError {
            throw error
        } catch {
            // A broken connection is explained by the cgroup when the OOM killer struck.
            if process.cgroup.oomKilled() { throw .memoryLimitExceeded(memoryMB: config.memoryMB) }
            if let status = process.exitStatus { throw .invocationFailed("the function \(status)") }
            throw .invocationFailed("\(error)")
        }
    }

    /// `invoke` bounded by the function's timeout: past it the instance is killed (so the call returns) and
    /// `.timedOut` is thrown; the instance is then stopped and must not be reused.
    public func invoke(_ request: HTTPRequest, requestID: String, timeout: Duration) async throws(BootstrapError) -> HTTPResponse
    {
        do {
            return try await withThrowingTaskGroup(of: HTTPResponse?.self) { group in
                group.addTask { try await self.invoke(request, requestID: requestID) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    await self.stop()
                    throw BootstrapError.timedOut(timeout)
                }
                return response
            }
        } catch let error as BootstrapError {
            throw error
        } catch is CancellationError {
            await stop()
            throw .cancelled
        } catch {
            throw .invocationFailed("\(error)")
        }
    }

    /// Invokes an image event function: `POST /event-invoke` with the event (which must be JSON) as the body
    /// and the X-Scf-* headers; the response body is the function's return value. A non-JSON or oversize event
    /// is refused (400 / 406) before the function is touched.
    public func invokeEvent(_ event: [UInt8], requestID: String, timeout: Duration) async throws(BootstrapError) -> HTTPResponse {
        try Self.validateEvent(event)
        let request = HTTPRequest(
            method: "POST", target: SCFContract.eventInvokePath,
            headers: [("Content-Type", "application/json")], body: event)
        return try await invoke(request, requestID: requestID, timeout: timeout)
    }

    /// Refuses an event the contract refuses: over 6 MB (406) or not JSON (400).
    public static func validateEvent(_ event: [UInt8]) throws(BootstrapError) {
        if event.count > SCFContract.maxSyncPayloadBytes {
            throw .requestTooLarge(event.count, limit: SCFContract.maxSyncPayloadBytes)
        }
        if (try? JSONSerialization.jsonObject(with: Data(event), options: [.fragmentsAllowed])) == nil {
            throw .invalidRequest("the event of an event function must be JSON")
        }
    }

    /// Peak memory of the instance's cgroup, in bytes.
    public var maxMemoryUsed: Int64? { process.cgroup.memoryPeak() }

    /// Stops the instance (SIGTERM, `grace`, SIGKILL of the whole cgroup), removes its cgroup, unmounts and
    /// deletes its rootfs. Idempotent.
    public func stop(grace: Duration = .zero) async {
        guard stopped.setOnce() else { return }
        await process.stop(grace: grace)
        rootfs.remove()
    }
}
