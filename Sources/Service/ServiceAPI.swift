import Bootstrap
import Executor
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP API of `faasbox serve` (DESIGN "Interfaces"), over `FunctionService`. Errors are JSON
/// `{"Error": {"Code", "Message"}}` with the HTTP status of the contract's code (432, 433, …) where there is one.
public enum ServiceAPI {
    static let invocationType = HTTPField.Name("X-Scf-Invocation-Type")!
    static let logType = HTTPField.Name("X-Scf-Log-Type")!
    static let requestIDHeader = HTTPField.Name("X-Scf-Request-Id")!

    /// The router with every route of the API. With a `verifier` (the TCP listener), every request but
    /// `/healthz` (and `/metrics` when `metricsPublic`) must be signed (TC3-HMAC-SHA256).
    public static func router(_ service: FunctionService, verifier: RequestVerifier? = nil, metricsPublic: Bool = false)
        -> Router<BasicRequestContext>
    {
        let router = Router()
        if let verifier {
            router.add(
                middleware: SignedRequests(
                    verifier: verifier, openPaths: metricsPublic ? ["/healthz", "/metrics"] : ["/healthz"]))
        }
        router.get("/healthz") { _, _ in json(await service.health()) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: await service.metricsText())))
        }
        router.get("/functions") { _, _ in json(service.functionNames) }
        router.get("/instances") { _, _ in json(await service.instances()) }
        router.put("/functions/:name") { request, context in
            try await handle {
                var request = request
                let body = try await collect(&request, limit: 1 << 20)
                let spec: FunctionSpec
                do { spec = try JSONDecoder().decode(FunctionSpec.self, from: Data(body)) } catch {
                    throw ServiceError.invalidRequest("the body is not a function config: \(error)")
                }
                return json(try await service.deploy(try name(context), spec))
            }
        }
        router.get("/functions/:name") { _, context in try await handle { json(try await service.info(try name(context))) } }
        router.delete("/functions/:name") { _, context in
            try await handle {
                try await service.remove(try name(context))
                return Response(status: .noContent)
            }
        }
        router.post("/functions/:name/invocations") { request, context in
            try await handle { try await invoke(service, request, try name(context)) }
        }
        router.get("/functions/:name/invocations/:id") { _, context in
            try await handle {
                json(try await service.status(try name(context), requestID: try context.parameters.require("id")))
            }
        }
        router.get("/functions/:name/logs") { request, context in
            try await handle {
                let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 100
                let id = request.uri.queryParameters.get("requestId")
                return json(try await service.logs(try name(context), requestID: id, limit: limit))
            }
        }
        router.post("/images") { request, _ in try await handle { try await ImageUploads.receive(request, store: service.store) }
        }
        // `/web/{name}/…` never reaches the router: WebPassthroughHandler answers it in front of Hummingbird.
        return router
    }

    static func name(_ context: BasicRequestContext) throws -> String { try context.parameters.require("name") }

    /// `POST /functions/{name}/invocations`: sync (the result) or async (`X-Scf-Invocation-Type: Event`: the
    /// request id, once the event is stored).
    static func invoke(_ service: FunctionService, _ request: Request, _ name: String) async throws -> Response {
        var request = request
        let event = try await collect(&request, limit: SCFContract.maxSyncPayloadBytes)
        if request.headers[invocationType]?.lowercased() == "event" {
            let id = try await service.enqueue(name, event: event)
            return json(["FunctionRequestId": id, "Status": "queued"], status: .accepted, requestID: id)
        }
        let tail = request.headers[logType]?.lowercased() == "tail"
        let result = try await service.invoke(name, event: event, tail: tail)
        let status = result.succeeded ? HTTPResponse.Status.ok : .init(code: result.invokeResult)
        return json(result, status: status, requestID: result.functionRequestID)
    }

    /// The request's body, or 406 past `limit` bytes.
    static func collect(_ request: inout Request, limit: Int) async throws -> [UInt8] {
        do {
            return Array(buffer: try await request.collectBody(upTo: limit))
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServiceError.invocation(.instance(.requestTooLarge(limit + 1, limit: limit)))
        } catch is NIOTooManyBytesError {  // what collectBody(upTo:) throws past its limit
            throw ServiceError.invocation(.instance(.requestTooLarge(limit + 1, limit: limit)))
        }
    }

    /// Runs a route, turning a `ServiceError` into its JSON error response.
    static func handle(_ body: () async throws -> Response) async throws -> Response {
        do { return try await body() } catch let error as ServiceError { return errorResponse(error) } catch let error
            as AuthFailure
        {
            return authFailure(error)
        }
    }

    /// 401 with the `AuthFailure` code: a request on the TCP listener that is not (properly) signed.
    static func authFailure(_ failure: AuthFailure) -> Response {
        json(["Error": ["Code": failure.code.rawValue, "Message": failure.message]], status: .unauthorized)
    }

    static func authFailureJSON(_ failure: AuthFailure) -> [UInt8] {
        Array(encoded(["Error": ["Code": failure.code.rawValue, "Message": failure.message]]))
    }

    static func errorResponse(_ error: ServiceError) -> Response {
        json(errorBody(error), status: .init(code: error.status))
    }

    /// `{"Error": {"Code", "Message"}}` for `error`.
    static func errorJSON(_ error: ServiceError) -> [UInt8] { Array(encoded(errorBody(error))) }

    private static func errorBody(_ error: ServiceError) -> [String: [String: String]] {
        ["Error": ["Code": error.codeName, "Message": error.description]]
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, requestID: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let requestID { headers[requestIDHeader] = requestID }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: encoded(value))))
    }

    /// The API's JSON: keys sorted, dates in ISO 8601.
    private static func encoded(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }
}
