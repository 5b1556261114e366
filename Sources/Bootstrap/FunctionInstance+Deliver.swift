import NIOCore
import NIOPosix
import Sandbox
import Synchronization
import SystemSupport

/// An invocation, delivered the way the instance's protocol takes it (contract §1), within its timeout.
extension FunctionInstance {
    /// Delivers `invocation` and returns the function's answer: a web function's HTTP response (collected,
    /// over 6 MB: 407; or, with `sink`, passed on as it arrives and returned without its body); an event
    /// function's return value as the body; for a job (whose invocation is its run to exit) an empty 200 when
    /// it exited 0. Past `timeout` (or on cancellation) the instance is stopped at once and `.timedOut` (or
    /// `.cancelled`) is thrown; after any error other than `.functionError` the instance must not be reused.
    public func deliver(
        _ invocation: Invocation, requestID: String, timeout: Duration, sink: ResponseSink? = nil
    ) async throws(BootstrapError) -> HTTPResponse {
        resume()
        switch (invocation, protocolKind) {
        case (_, .job):
            try await waitForJob(timeout: timeout)
            return HTTPResponse(status: 200, reason: "OK", headers: [], body: [])
        case (.http(let request), _):
            return try await bounded(by: timeout) { () throws(BootstrapError) in
                try await self.forward(request, requestID: requestID, sink: sink)
            }
        case (.event(let event), _):
            return try await deliverEvent(event, requestID: requestID, timeout: timeout)
        }
    }

    /// Forwards an HTTP request to the function's port 9000 with the contract's X-Scf-* headers. A request
    /// body over 6 MB is refused (406) before the function sees it.
    private func forward(_ request: HTTPRequest, requestID: String, sink: ResponseSink?) async throws(BootstrapError)
        -> HTTPResponse
    {
        if request.body.count > SCFContract.maxSyncPayloadBytes {
            throw .requestTooLarge(request.body.count, limit: SCFContract.maxSyncPayloadBytes)
        }
        let response = Mutex(HTTPResponse(status: 0, reason: "", headers: [], body: []))
        let onHead: @Sendable (HTTPResponse) throws -> Void = { head in
            response.withLock { $0 = head }
            try sink?.head(head)
        }
        let collect: @Sendable ([UInt8]) throws -> Void = { piece in response.withLock { $0.body += piece } }
        let onBody = sink?.body ?? collect
        let nothing: @Sendable () -> Void = {}
        let onEnd = sink?.end ?? nothing
        let maxResponseBytes: Int? = sink == nil ? SCFContract.maxSyncPayloadBytes : nil
        let headers = contextHeaders(requestID)
        try await attributing(to: requestID) { () throws(BootstrapError) in
            do {
                try await connections.exchange(
                    request, extraHeaders: headers, maxResponseBytes: maxResponseBytes, onHead: onHead, onBody: onBody,
                    onEnd: onEnd, flow: sink?.flow)
            } catch let error as BootstrapError {
                throw error
            } catch {
                // A broken connection is explained by the cgroup when the OOM killer struck, or by the exit.
                if let oom = oomFailure { throw oom }
                if let status = process.exitStatus { throw .invocationFailed("the function \(status)") }
                throw .invocationFailed("\(error)")
            }
        }
        return response.withLock { $0 }
    }

    /// An image event function's invocation: through the runtime API when the function took its events from
    /// there, else `POST /event-invoke` with the event as the body.
    private func deliverEvent(_ event: Event, requestID: String, timeout: Duration) async throws(BootstrapError)
        -> HTTPResponse
    {
        guard let api = runtimeServer?.api else {
            let request = HTTPRequest(
                method: "POST", target: SCFContract.eventInvokePath,
                headers: [("Content-Type", "application/json")], body: event.bytes)
            return try await deliver(.http(request), requestID: requestID, timeout: timeout)
        }
        let invocation = RuntimeAPI.Invocation(
            requestID: requestID, event: event.bytes, memoryMB: config.memoryMB,
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

    /// A job's invocation: waits (up to `timeout`) for the job to exit. Exit status 0 is success; any other end is
    /// an error: `.jobFailed` with its output, `.memoryLimitExceeded` if the OOM killer ended it.
    private func waitForJob(timeout: Duration) async throws(BootstrapError) {
        let process = self.process
        let status = try await bounded(by: timeout) { await process.wait() }
        await output.waitForEOF()
        output.readRemaining()  // a busy reader thread may not have come to this instance's pipes yet
        if let oom = oomFailure { throw oom }
        if status != .exited(0) { throw .jobFailed(status, output: output.text) }
    }

    /// `.memoryLimitExceeded` when the cgroup's OOM killer has struck the instance: what explains a broken
    /// connection, a runtime API that lost its function, or a job's end.
    var oomFailure: BootstrapError? { oomKilled ? .memoryLimitExceeded(memoryMB: config.memoryMB) : nil }

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
        case .failure(let error): throw .internalError("\(error)")
        }
    }
}
