import Foundation
import ImageRuntime
import Logging
import NIOCore
import NIOPosix
import Sandbox
import Synchronization
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
    /// How invocations reach this instance, found out when it became ready.
    public let protocolKind: ProtocolKind
    private let runtimeServer: RuntimeAPIServer?
    private let group: EventLoopGroup
    /// The teardown, once `stop` has begun it.
    private let stopping = Mutex<Task<Void, Never>?>(nil)
    /// The connection to :9000 kept from the last invocation, when the function keeps connections alive.
    private let keptConnection = Mutex<FunctionConnection?>(nil)
    /// The connection being made for the next invocation, when the function closed the last one.
    private let nextConnection = Mutex<Task<FunctionConnection, any Error>?>(nil)
    /// Whether the function closed the connection after its last response (a server that forks per connection):
    /// then each invocation connects for the next one as it starts (see `exchange`).
    private let closesConnections = Atomic<Bool>(false)
    /// Calls in a row that came from another event loop than the kept connection's (see `takeConnection`).
    private let callsAway = Atomic<Int>(0)

    /// The ways an instance takes its invocations (contract §1).
    public enum ProtocolKind: String, Sendable {
        /// Web functions: the caller's request, forwarded to :9000.
        case http
        /// Image event functions: `POST /event-invoke` on :9000.
        case eventInvoke = "event-invoke"
        /// Custom runtimes: the event loop against the runtime API faasbox serves in the instance.
        case runtimeAPI = "runtime-api"
        /// Job functions: the event in `SCF_CUSTOM_CONTAINER_EVENT`; the run to exit is the invocation.
        case job
    }

    init(
        id: String, config: FunctionConfig, timings: PhaseTimings, output: OutputCollector, process: SandboxProcess,
        rootfs: InstanceRootfs, protocolKind: ProtocolKind, runtimeServer: RuntimeAPIServer?, group: EventLoopGroup
    ) {
        self.id = id
        self.config = config
        self.timings = timings
        self.output = output
        self.process = process
        self.rootfs = rootfs
        self.protocolKind = protocolKind
        self.runtimeServer = runtimeServer
        self.group = group
    }

    /// Cold-starts an instance of `image`: PullCode (verify, unpack, compose the rootfs), InitRuntime (the
    /// sandbox up to exec), InitFunction (until ready: port 9000 accepts, or, for event functions, the runtime
    /// API's `init/ready`; a job is ready at exec and runs with `jobEvent`). On any failure, everything made
    /// so far is torn down before the error is thrown.
    public static func coldStart(
        image reference: String, store: ImageStore, config: FunctionConfig, jobEvent: [UInt8]? = nil,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "faasbox.bootstrap")
    ) async throws(BootstrapError) -> FunctionInstance {
        let clock = ContinuousClock()
        let begin = clock.now
        var timings = PhaseTimings()
        let id = "fb-" + String(UInt64.random(in: 1 << 60...UInt64.max), radix: 16)
        if config.kind == .job { try validateJobEvent(jobEvent ?? []) }

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
                spec.environment.append("\(SCFContract.jobEventVariable)=\(String(decoding: jobEvent ?? [], as: UTF8.self))")
            }
            let spawnStart = clock.now
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
            default: throw .invocationFailed("\(error)")
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
            default: throw .invocationFailed("\(error)")
            }
        }
        if protocolKind != .runtimeAPI, let server = runtimeServer {
            await server.shutdown(.cancelled)
            runtimeServer = nil
        }
        if let api = runtimeServer?.api {
            Task {
                let status = await process.wait()
                api.close(
                    process.cgroup.oomKilled()
                        ? .memoryLimitExceeded(memoryMB: config.memoryMB) : .invocationFailed("the function \(status)"))
            }
        }
        logger.debug("instance ready", metadata: ["instance": "\(id)", "coldstart-ms": "\(timings.coldstart.milliseconds)"])
        return FunctionInstance(
            id: id, config: config, timings: timings, output: output, process: process,
            rootfs: rootfs, protocolKind: protocolKind, runtimeServer: runtimeServer, group: group)
    }

    /// Serves the runtime API for an event function: on 127.0.0.1:9001 in a network namespace made for the
    /// instance now (so that it listens before the bootstrap starts), or on a free host port with host networking.
    private static func startRuntimeAPI(
        _ spec: inout SandboxSpec, config: FunctionConfig, output: OutputCollector, group: EventLoopGroup
    ) async throws -> RuntimeAPIServer {
        let listener: OwnedFileDescriptor
        var port = RuntimeAPIServer.port
        if config.hostNetwork {
            (listener, port) = try NetworkNamespace.listenOnHost()
        } else {
            let netns = try NetworkNamespace()
            listener = try netns.listen(port: port)
            spec.network = .namespace(netns)
        }
        spec.environment += ["SCF_RUNTIME_API=127.0.0.1", "SCF_RUNTIME_API_PORT=\(port)"]
        let api = RuntimeAPI { message in output.append(.init(stream: .stderr, text: "faasbox: \(message)")) }
        return try await RuntimeAPIServer.start(api, listener: listener, group: group)
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
        spec.mounts = config.mounts
        if let user = try ImageUser.resolve(runtime?.user ?? "", rootfs: rootfs.path) { spec.user = user }
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

    /// Forwards an HTTP request to the function's port 9000, with the contract's X-Scf-* headers, and collects
    /// the response (over `maxResponseBytes`: 407). A request body over 6 MB is refused (406) before the
    /// function sees it.
    public func invoke(_ request: HTTPRequest, requestID: String, maxResponseBytes: Int = SCFContract.maxSyncPayloadBytes)
        async throws(BootstrapError) -> HTTPResponse
    {
        let response = Mutex(HTTPResponse(status: 0, reason: "", headers: [], body: []))
        try await forward(
            request, requestID: requestID, maxResponseBytes: maxResponseBytes,
            onHead: { head in response.withLock { $0 = head } }, onBody: { piece in response.withLock { $0.body += piece } },
            onEnd: {})
        return response.withLock { $0 }
    }

    /// Forwards an HTTP request and passes the response on as it arrives — the head, then each piece of the body
    /// (chunked responses and server-sent events are not buffered), then `onEnd` the moment it is complete (on
    /// the connection's event loop, before the output is attributed) — bounded by `timeout` like `invoke`.
    public func invokeStreaming(
        _ request: HTTPRequest, requestID: String, timeout: Duration,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void,
        onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void = {}
    ) async throws(BootstrapError) {
        try await bounded(by: timeout) {
            try await self.forward(
                request, requestID: requestID, maxResponseBytes: nil, onHead: onHead, onBody: onBody, onEnd: onEnd)
        }
    }

    private func forward(
        _ request: HTTPRequest, requestID: String, maxResponseBytes: Int?,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void, onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void
    ) async throws(BootstrapError) {
        if request.body.count > SCFContract.maxSyncPayloadBytes {
            throw .requestTooLarge(request.body.count, limit: SCFContract.maxSyncPayloadBytes)
        }
        try await attributing(to: requestID) { () throws(BootstrapError) in
            do {
                try await exchange(
                    request, requestID: requestID, maxResponseBytes: maxResponseBytes, onHead: onHead, onBody: onBody,
                    onEnd: onEnd)
            } catch let error as BootstrapError {
                throw error
            } catch {
                // A broken connection is explained by the cgroup when the OOM killer struck.
                if process.cgroup.oomKilled() { throw .memoryLimitExceeded(memoryMB: config.memoryMB) }
                if let status = process.exitStatus { throw .invocationFailed("the function \(status)") }
                throw .invocationFailed("\(error)")
            }
        }
    }

    /// One request and its response over the connection the instance kept from its last invocation, or a new
    /// one. A kept connection the function closed just as the request went out (no byte of response yet) is
    /// replaced once, for methods that may be repeated (RFC 9110 §9.2.2).
    private func exchange(
        _ request: HTTPRequest, requestID: String, maxResponseBytes: Int?,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void, onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void
    ) async throws {
        // The caller's event loop (serve runs its tasks on the loops of the connections they answer): the
        // connection to the function is best on the same one, or each request and each response crosses
        // threads (an eventfd write and another thread's wake-up each way).
        let here = MultiThreadedEventLoopGroup.currentEventLoop
        var (connection, reused) = try await takeConnection(here: here)
        // A function that closes each connection gets the next one while it answers this request, as a proxy's
        // pre-connect does: its accept and per-connection start-up (hello-web forks a shell) overlap this
        // invocation instead of delaying the next.
        if closesConnections.load(ordering: .relaxed) { prepareConnection(on: here) }
        while true {
            do {
                let keep = try await connection.exchange(
                    request, extraHeaders: contextHeaders(requestID), maxBody: maxResponseBytes, onHead: onHead,
                    onBody: onBody, onEnd: onEnd)
                // (One made ahead for a function that has begun to keep connections goes unused: its timer
                // closes it, see `prepareConnection`.)
                closesConnections.store(!keep, ordering: .relaxed)
                if keep {
                    keepConnection(connection)
                } else {
                    connection.close()
                    prepareConnection(on: here)
                }
                return
            } catch let failure as FunctionConnection.Failure {
                connection.close()
                guard reused, !failure.responseStarted, Self.idempotentMethods.contains(request.method) else {
                    throw failure.underlying
                }
                (connection, reused) = (try await openConnection(on: here), false)
            }
        }
    }

    static let idempotentMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]

    /// The kept connection, or the one made ahead of this invocation, or a new one. The first two count as
    /// reused: the function may have closed them while they waited. A kept connection on another event loop
    /// than the caller's (`here`) is still used, but after `callsBeforeMove` such calls in a row it is closed
    /// and a new one made on the caller's loop: one caller (a proxy, a benchmark) keeps its connection, and so
    /// its loop, while callers that alternate between loops do not make the instance reconnect on every call.
    /// (Closed before the new one is made, for servers that take one connection at a time.)
    private func takeConnection(here: EventLoop?) async throws -> (FunctionConnection, reused: Bool) {
        if let kept = keptConnection.take() {
            if kept.isFresh(maxIdle: Self.keepAliveIdle) {
                guard let here, kept.eventLoop !== here else {
                    callsAway.store(0, ordering: .relaxed)
                    return (kept, true)
                }
                guard callsAway.wrappingAdd(1, ordering: .relaxed).newValue >= Self.callsBeforeMove else {
                    return (kept, true)
                }
                callsAway.store(0, ordering: .relaxed)
            }
            kept.close()
        }
        if let next = nextConnection.take(), let made = try? await next.value {
            if made.isFresh(maxIdle: Self.preparedIdle) { return (made, true) }
            made.close()
        }
        return (try await openConnection(on: here), false)
    }

    /// Calls in a row from another event loop than the kept connection's before it moves to theirs.
    public static let callsBeforeMove = 16

    /// Connects for the next invocation now, when the function closes its connection after each response (a
    /// server that forks per connection, like hello-web's, then also forks ahead): the next invocation does
    /// not wait for the setns(2), connect(2) and the channel's registration.
    private func prepareConnection(on loop: EventLoop?) {
        let made = nextConnection.withLock { next -> Task<FunctionConnection, any Error>? in
            guard next == nil, stopping.withLock({ $0 == nil }) else { return nil }
            next = Task { try await self.openConnection(on: loop) }
            return next
        }
        guard let made else { return }
        // Not taken within `preparedIdle`: closed, which gives the function back what the connection holds
        // (hello-web's server keeps a forked shell waiting on it) — an idle instance holds no connection.
        (loop ?? group.next()).scheduleTask(in: Self.preparedIdle.timeAmount) {
            let unused = self.nextConnection.withLock { next in
                guard next == made else { return false }
                next = nil
                return true
            }
            if unused { Task { (try? await made.value)?.close() } }
        }
    }

    /// A new connection to :9000, its I/O on `loop` (by default the current event loop, else any).
    private func openConnection(on loop: EventLoop? = nil) async throws -> FunctionConnection {
        let socket = try process.connect(port: SCFContract.functionPort)
        return try await FunctionConnection.open(
            socket, on: loop ?? MultiThreadedEventLoopGroup.currentEventLoop ?? group.next())
    }

    private func keepConnection(_ connection: FunctionConnection) {
        let extra = keptConnection.withLock { c -> FunctionConnection? in
            if stopping.withLock({ $0 != nil }) { return connection }
            defer { c = connection }
            return c
        }
        extra?.close()
    }

    /// How long a kept connection may idle and still be used: below the keep-alive timeouts of common servers.
    static let keepAliveIdle: Duration = .seconds(4)
    /// How long a connection made ahead may wait for its request: short, as some servers give a new
    /// connection only a second or two to send one (it helps back-to-back calls; later ones connect anew).
    static let preparedIdle: Duration = .seconds(1)

    /// Runs one invocation's work with the function's output attributed to `requestID` (see OutputCollector).
    private func attributing<T>(to requestID: String, _ body: () async throws(BootstrapError) -> T) async throws(BootstrapError)
        -> T
    {
        output.begin(requestID)
        do {
            let result = try await body()
            output.end(requestID)
            return result
        } catch {
            output.end(requestID)
            throw error
        }
    }

    /// The X-Scf-* context headers of the contract (§4), with local stand-ins for the account and credentials.
    private func contextHeaders(_ requestID: String) -> [(String, String)] {
        [
            ("X-Scf-Request-Id", requestID), ("X-Scf-Memory", "\(config.memoryMB)"),
            ("X-Scf-Timeout", "\(config.timeout.components.seconds * 1000)"), ("X-Scf-Version", config.version),
            ("X-Scf-Name", config.name), ("X-Scf-Namespace", config.namespace), ("X-Scf-Region", SCFContract.localRegion),
            ("X-Scf-Appid", SCFContract.localAppID), ("X-Scf-Uin", SCFContract.localUIN),
            ("X-Scf-Session-Token", SCFContract.localCredential), ("X-Scf-Secret-Id", SCFContract.localCredential),
            ("X-Scf-Secret-Key", SCFContract.localCredential),
        ]
    }

    /// `invoke` bounded by the function's timeout: past it the instance is killed (so the call returns) and
    /// `.timedOut` is thrown; the instance is then stopped and must not be reused.
    public func invoke(_ request: HTTPRequest, requestID: String, timeout: Duration) async throws(BootstrapError) -> HTTPResponse
    {
        try await bounded(by: timeout) { try await self.invoke(request, requestID: requestID) }
    }

    /// Runs `body`, but past `timeout` (or when the task is cancelled) the instance is stopped at once, which
    /// ends `body`, and `.timedOut` (or `.cancelled`) is thrown. The deadline is a timer on an event loop, not a
    /// racing child task: it costs no task and no thread hand-off on the warm path.
    private func bounded<T>(by timeout: Duration, _ body: () async throws -> T) async throws(BootstrapError) -> T {
        let expired = AtomicFlag()
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        let timer = loop.scheduleTask(in: timeout.timeAmount) {
            if expired.setOnce() { Task { await self.stop(grace: .zero) } }
        }
        defer { timer.cancel() }
        let result: Result<T, any Error>
        do {
            result = .success(
                try await withTaskCancellationHandler {
                    try await body()
                } onCancel: {
                    Task { await self.stop(grace: .zero) }
                })
        } catch {
            result = .failure(error)
        }
        if expired.isSet {
            await stop(grace: .zero)
            throw .timedOut(timeout)
        }
        if Task.isCancelled {
            await stop(grace: .zero)
            throw .cancelled
        }
        switch result {
        case .success(let value): return value
        case .failure(let error as BootstrapError): throw error
        case .failure(is CancellationError): throw .cancelled
        case .failure(let error): throw .invocationFailed("\(error)")
        }
    }

    /// Invokes an image event function: `POST /event-invoke` with the event (which must be JSON) as the body
    /// and the X-Scf-* headers; the response body is the function's return value. A non-JSON or oversize event
    /// is refused (400 / 406) before the function is touched.
    public func invokeEvent(_ event: [UInt8], requestID: String, timeout: Duration) async throws(BootstrapError) -> HTTPResponse {
        try Self.validateEvent(event)
        if let api = runtimeServer?.api {
            let invocation = RuntimeAPI.Invocation(
                requestID: requestID, event: event, memoryMB: config.memoryMB,
                timeoutMilliseconds: Int64(timeout.milliseconds))
            let outcome = try await attributing(to: requestID) { () throws(BootstrapError) in
                try await bounded(by: timeout) { await api.invoke(invocation) }
            }
            switch outcome {
            case .response(let body): return HTTPResponse(status: 200, reason: "OK", headers: [], body: body)
            case .error(let body): throw .functionError(String(decoding: body, as: UTF8.self))
            case .failed(let error): throw error
            }
        }
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

    /// Refuses a job event the contract refuses: not JSON (400) or over the 128 KB of one variable (406).
    public static func validateJobEvent(_ event: [UInt8]) throws(BootstrapError) {
        if event.count > SCFContract.maxJobEventBytes {
            throw .requestTooLarge(event.count, limit: SCFContract.maxJobEventBytes)
        }
        if event.contains(0) { throw .invalidRequest("the event of a job function cannot contain NUL bytes") }
        if !event.isEmpty, (try? JSONSerialization.jsonObject(with: Data(event), options: [.fragmentsAllowed])) == nil {
            throw .invalidRequest("the event of a job function must be JSON")
        }
    }

    /// A job's invocation: waits (up to `timeout`) for the job to exit. Exit status 0 is success; any other end is
    /// an error: `.jobFailed` with its output, `.memoryLimitExceeded` if the OOM killer ended it.
    public func waitForJob(timeout: Duration) async throws(BootstrapError) -> ExitStatus {
        let process = self.process
        let status = try await bounded(by: timeout) { await process.wait() }
        await output.waitForEOF()
        if process.cgroup.oomKilled() { throw .memoryLimitExceeded(memoryMB: config.memoryMB) }
        if status != .exited(0) { throw .jobFailed(status, output: output.text) }
        return status
    }

    /// Peak memory of the instance's cgroup, in bytes.
    public var maxMemoryUsed: Int64? { process.cgroup.memoryPeak() }

    /// Stops the instance (SIGTERM, `grace` — by default the function's `stopGrace` — then SIGKILL of the whole
    /// cgroup), removes its cgroup, unmounts and deletes its rootfs. Idempotent.
    public func stop(grace: Duration? = nil) async {
        // The first call tears down; any other call, concurrent or later, waits for that teardown to finish.
        let teardown = stopping.withLock { task in
            if let task { return task }
            let grace = grace ?? config.stopGrace
            let new = Task { await self.tearDown(grace: grace) }
            task = new
            return new
        }
        await teardown.value
    }

    private func tearDown(grace: Duration) async {
        keptConnection.take()?.close()
        if let next = nextConnection.take() { (try? await next.value)?.close() }
        runtimeServer?.api.close(.invocationFailed("the instance was stopped"))
        await process.stop(grace: grace)
        await runtimeServer?.stop()
        let rootfs = self.rootfs
        _ = await runBlocking { rootfs.remove() }  // unmount and delete: off the cooperative pool
    }
}
