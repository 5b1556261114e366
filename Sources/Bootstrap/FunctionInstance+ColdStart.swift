import ImageRuntime
import Logging
import NIOCore
import NIOPosix
import Sandbox
import SystemSupport

/// The cold start: PullCode, InitRuntime, InitFunction, and the function's config turned into a sandbox.
extension FunctionInstance {
    /// Cold-starts an instance of `image`: PullCode (verify, unpack, compose the rootfs), InitRuntime (the
    /// sandbox up to exec), InitFunction (until ready: port 9000 accepts, or, for event functions, the runtime
    /// API's `init/ready`; a job is ready at exec and runs with `jobEvent`). On any failure, everything made
    /// so far is torn down before the error is thrown.
    public static func coldStart(
        image reference: String, store: ImageStore, config: FunctionConfig, jobEvent: Event? = nil,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "faasbox.bootstrap")
    ) async throws(BootstrapError) -> FunctionInstance {
        let clock = ContinuousClock()
        let begin = clock.now
        var timings = PhaseTimings()
        let id = "fb-" + String(UInt64.random(in: 1 << 60...UInt64.max), radix: 16)

        // The seccomp filter compiles on the other core while the image is pulled (once per profile and process).
        let profile = config.seccomp?.profile
        let seccompReady = Task.detached { try? Sandbox.prepareSeccomp(profile) }
        let image: PulledImage
        let rootfs: InstanceRootfs
        do {
            image = try await store.pull(reference)
            rootfs = try store.composeRootfs(image, instanceID: id)
        } catch { throw .image(error) }
        timings.pullCode = clock.now - begin

        let process: SandboxProcess
        let output = OutputCollector()
        var runtimeServer: RuntimeAPIServer?
        do {
            if Task.isCancelled { throw BootstrapError.cancelled }
            var spec = try sandboxSpec(id: id, config: config, image: image, rootfs: rootfs, reference: reference)
            if config.kind == .job {
                let event = String(decoding: jobEvent?.bytes ?? [], as: UTF8.self)
                spec.environment.append("\(SCFContract.jobEventVariable)=\(event)")
            }
            let spawnStart = clock.now
            await seccompReady.value  // what is left of the filter's compile is InitRuntime's
            // Part of InitRuntime, as the user namespace is.
            try mapRootfsOwners(spec, rootfs: rootfs, image: image, store: store)
            if config.kind == .event {
                runtimeServer = try await startRuntimeAPI(&spec, config: config, output: output, group: group)
            }
            process = try await Sandbox.spawn(spec)
            timings.initRuntime = clock.now - spawnStart
        } catch {
            await runtimeServer?.stop()
            rootfs.remove()
            switch error {
            case let e as BootstrapError: throw e
            case let e as SandboxError: throw .sandbox(e)
            default: throw .internalError("starting the sandbox: \(error)")
            }
        }
        let protocolKind: ProtocolKind
        do {
            try output.attach(stdout: process.stdout, stderr: process.stderr)
            let execDone = clock.now
            protocolKind = try await waitUntilReady(process, config: config, runtimeAPI: runtimeServer?.api)
            timings.initFunction = clock.now - execDone
            timings.coldstart = clock.now - begin
        } catch {
            await runtimeServer?.shutdown(.cancelled)
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
            default: throw .internalError("waiting for the function to be ready: \(error)")
            }
        }
        if protocolKind != .runtimeAPI, let server = runtimeServer {
            await server.shutdown(.cancelled)
            runtimeServer = nil
        }
        let instance = FunctionInstance(
            id: id, config: config, timings: timings, output: output, process: process,
            rootfs: rootfs, protocolKind: protocolKind, runtimeServer: runtimeServer, group: group)
        if let api = runtimeServer?.api {
            Task {
                let status = await process.wait()
                api.close(instance.oomFailure ?? .invocationFailed("the function \(status)"))
            }
        }
        logger.debug("instance ready", metadata: ["instance": "\(id)", "coldstart-ms": "\(timings.coldstart.milliseconds)"])
        return instance
    }

    /// Serves the runtime API for an event function: on 127.0.0.1:9001 in a network namespace made for the
    /// instance now (so that it listens before the bootstrap starts), or on a free host port with host
    /// networking — where only the instance's own processes are answered (any host process could connect:
    /// it would take the function's events and answer them).
    private static func startRuntimeAPI(
        _ spec: inout SandboxSpec, config: FunctionConfig, output: OutputCollector, group: EventLoopGroup
    ) async throws -> RuntimeAPIServer {
        let listener: OwnedFileDescriptor
        var port = RuntimeAPIServer.port
        var admit: (@Sendable (UInt16, UInt16) -> Bool)?
        if config.hostNetwork {
            (listener, port) = try NetworkNamespace.listenOnHost()
            let instance = spec.instanceID
            admit = { peer, local in
                let own = LoopbackPeer.isHeld(
                    peerPort: peer, localPort: local, by: CgroupHost.current.processes(ofInstance: instance))
                if !own {
                    output.append(
                        .init(
                            stream: .stderr,
                            text: "faasbox: runtime API: refused a connection from 127.0.0.1:\(peer), not the instance's"))
                }
                return own
            }
        } else {
            let netns = try NetworkNamespace()
            listener = try netns.listen(port: port)
            spec.network = .namespace(netns)
        }
        spec.environment += ["SCF_RUNTIME_API=127.0.0.1", "SCF_RUNTIME_API_PORT=\(port)"]
        let api = RuntimeAPI { message in output.append(.init(stream: .stderr, text: "faasbox: \(message)")) }
        return try await RuntimeAPIServer.start(api, listener: listener, group: group, admit: admit)
    }

    /// With a user namespace, the image's files (stored as host root's) read as its root's inside.
    static func mapRootfsOwners(_ spec: SandboxSpec, rootfs: InstanceRootfs, image: PulledImage, store: ImageStore) throws {
        guard let userNamespace = spec.userNamespace else { return }
        let idMap = RootfsIDMap(userNamespace: try userNamespace.descriptor(), hostRoot: userNamespace.hostID)
        do { try store.mapOwners(of: rootfs, image: image, to: idMap) } catch { throw BootstrapError.image(error) }
    }

    /// The function's config as the sandbox takes it: the one place Bootstrap's values become Sandbox's.
    private static func sandboxSpec(
        id: String, config: FunctionConfig, image: PulledImage, rootfs: InstanceRootfs, reference: String
    ) throws(BootstrapError) -> SandboxSpec {
        let runtime = image.config.config
        let (arguments, cwd) = try BootstrapCommand.resolve(
            config: config, image: runtime, rootfs: rootfs.path, imageName: reference)
        var spec = SandboxSpec(
            rootfs: rootfs.path, arguments: arguments,
            environment: config.environment(imageEnv: runtime?.env ?? []), instanceID: id)
        spec.workingDirectory = cwd
        spec.limits.memoryBytes = Int64(config.memoryMB) << 20
        spec.limits.cpuWeight = SCFContract.cpuWeight(memoryMB: config.memoryMB)
        spec.limits.cpus = config.cpus
        spec.freezable = config.freezeIdleAfter != nil && config.kind != .job
        spec.network = config.hostNetwork ? .host : .isolated
        spec.seccomp = config.seccomp?.profile
        spec.userNamespace = config.userNamespace?.sandbox
        spec.mounts = config.mounts.map {
            SandboxSpec.Mount(source: $0.source, target: $0.target, readOnly: $0.readOnly, within: $0.within)
        }
        if let user = try ImageUser.resolve(runtime?.user ?? "", rootfs: rootfs.path) { spec.user = user }
        // Root in the image (as its user or its group) is an unprivileged range of host ids, never host root.
        if spec.userNamespace == nil, spec.user.uid == 0 || spec.user.gid == 0 {
            spec.userNamespace = config.rootUserNamespace.sandbox
        }
        return spec
    }

    /// Waits until the instance is ready, the process exits, or the init timeout passes. Port 9000 is polled
    /// (0.2 ms between tries, backing off to 5 ms); an event function may instead report `init/ready` to the
    /// runtime API, which ends the wait at once. Returns how the instance takes invocations.
    private static func waitUntilReady(_ process: SandboxProcess, config: FunctionConfig, runtimeAPI: RuntimeAPI?) async throws
        -> ProtocolKind
    {
        if config.kind == .job { return .job }
        let portKind: ProtocolKind = config.kind == .web ? .http : .eventInvoke
        guard let runtimeAPI else { return try await pollPort(process, initTimeout: config.initTimeout, kind: portKind) }
        return try await withThrowingTaskGroup(of: ProtocolKind?.self) { group in
            group.addTask { try await pollPort(process, initTimeout: config.initTimeout, kind: portKind) }
            group.addTask { await runtimeAPI.waitReady() ? .runtimeAPI : nil }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let kind = next { return kind }
            }
            throw BootstrapError.cancelled
        }
    }

    private static func pollPort(_ process: SandboxProcess, initTimeout: Duration, kind: ProtocolKind) async throws
        -> ProtocolKind
    {
        let deadline = ContinuousClock.now + initTimeout
        var pause = Duration.microseconds(200)
        Task { _ = await process.wait() }  // so that an exit is noticed while polling
        while true {
            if let status = process.exitStatus { throw BootstrapError.exitedDuringInit(status, output: "") }
            do {
                _ = try process.connect(port: SCFContract.functionPort)
                return kind
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
}

extension FunctionConfig.UserNamespace {
    var sandbox: SandboxSpec.UserNamespace { SandboxSpec.UserNamespace(hostID: hostID, count: count) }
}

extension FunctionConfig.Mount {
    /// Why a mount target is refused (under /proc or /dev, /tmp), or nil: the sandbox's rule, for validators.
    public static func refusedTarget(_ target: String) -> String? { SandboxSpec.Mount.refusedTarget(target) }
}
