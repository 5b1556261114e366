import Bootstrap
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// `ANY /web/{name}/{path…}`: the caller's request forwarded to a web function's instance (method, path after
/// the function's name, query, headers, body), its response passed back as it arrives.
enum WebPassthrough {
    /// Headers that describe one connection, not the message: never forwarded either way (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    static func forward(_ service: FunctionService, _ request: Request, _ name: String) async throws -> Response {
        var request = request
        let body = try await ServiceAPI.collect(&request, limit: SCFContract.maxSyncPayloadBytes)
        let forwarded = Bootstrap.HTTPRequest(
            method: request.method.rawValue, target: target(request.head.path ?? "/", name: name),
            headers: request.headers.filter { !hopByHop.contains($0.name.canonicalName) }.map { ($0.name.rawName, $0.value) },
            body: body)
        // The caller's response ends as soon as the function's does (`end`), before the invocation's bookkeeping.
        let (chunks, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        let head = Promise<Bootstrap.HTTPResponse>()
        let sink = OneShotRun.Sink(
            head: { head.fulfill(.success($0)) },
            body: { continuation.yield(ByteBuffer(bytes: $0)) },
            end: { continuation.finish() })
        Task {
            do {
                let outcome = try await service.invokeWeb(name, request: forwarded, sink: sink)
                if case .failure(let error) = outcome.result {
                    head.fulfill(.failure(ServiceError.invocation(error)))
                    continuation.finish(throwing: error)
                } else {
                    continuation.finish()
                }
            } catch {
                head.fulfill(.failure(error))
                continuation.finish(throwing: error)
            }
        }
        let response = try await head.value
        var fields = HTTPFields()
        var length: Int?
        for (key, value) in response.headers where !hopByHop.contains(key.lowercased()) {
            guard let field = HTTPField.Name(key) else { continue }
            if field == .contentLength { length = Int(value) }
            fields.append(HTTPField(name: field, value: value))
        }
        return Response(
            status: .init(code: response.status, reasonPhrase: response.reason), headers: fields,
            body: ResponseBody(contentLength: length) { writer in
                for try await chunk in chunks { try await writer.write(chunk) }
                try await writer.finish(nil)
            })
    }

    /// The request target the function sees: what follows `/web/{name}` (at least `/`), query included.
    static func target(_ path: String, name: String) -> String {
        let prefix = "/web/\(name)"
        var rest = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
        if !rest.hasPrefix("/") { rest = "/" + rest }
        return rest
    }
}

/// A value that arrives once, awaited by one caller.
final class Promise<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, any Error>?, waiter: CheckedContinuation<Value, any Error>?)>((nil, nil))

    /// Sets the value (or error); later calls are ignored.
    func fulfill(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { c in
                let ready = state.withLock { s -> Result<Value, any Error>? in
                    if s.result == nil { s.waiter = c }
                    return s.result
                }
                if let ready { c.resume(with: ready) }
            }
        }
    }
}
