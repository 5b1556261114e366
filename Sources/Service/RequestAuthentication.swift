import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Why a request on the TCP listener was not let in: the TencentCloud `AuthFailure.*` codes (HTTP 401 on the
/// native API). The message names what was wrong, never a key.
public struct AuthFailure: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidAuthorization = "AuthFailure.InvalidAuthorization"
        case signatureFailure = "AuthFailure.SignatureFailure"
        case secretIDNotFound = "AuthFailure.SecretIdNotFound"
        case signatureExpire = "AuthFailure.SignatureExpire"
    }
    public let code: Code
    public let message: String
    public var description: String { "\(code.rawValue): \(message)" }
}

/// Checks TC3-HMAC-SHA256 signatures against the state dir's credentials (api3-contract §1.2): the received
/// `Host` and `Content-Type` bytes, exactly the signed headers the `Authorization` header lists, the
/// timestamp within 300 s of now, the credential's date that of the timestamp.
public struct RequestVerifier: Sendable {
    public let credentials: CredentialStore
    /// How far a request's `X-TC-Timestamp` may be from now.
    public var allowedSkew: Int = 300

    public init(credentials: CredentialStore) { self.credentials = credentials }

    /// How the body enters the signature, from `X-TC-Content-SHA256`.
    public enum Payload: Sendable, Equatable {
        /// The body's own SHA-256 (no such header): the caller hashes what it received.
        case body
        /// `UNSIGNED-PAYLOAD`: the body is not signed.
        case unsigned
        /// A declared hex SHA-256: signed as declared; the caller must check the body against it as it streams.
        case declared(String)
    }

    public static func payload(contentSHA256: String?) throws(AuthFailure) -> Payload {
        guard let value = contentSHA256?.trimmingCharacters(in: .whitespaces) else { return .body }
        if value == TC3Signature.unsignedPayload { return .unsigned }
        let hex = value.lowercased()
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
            throw AuthFailure(
                code: .invalidAuthorization, message: "X-TC-Content-SHA256 must be UNSIGNED-PAYLOAD or a hex SHA-256")
        }
        return .declared(hex)
    }

    /// Lets the request in (returning the SecretId that signed it) or says why not. `header` looks up a
    /// header by its lower-case name; `payloadHash` is the hex SHA-256 of the body, or what `Payload` says.
    /// With `headersOnly`, stops before the signature itself: for refusing early, before a body is read.
    public func verify(
        method: String, path: String, query: String, header: (String) -> String?, payloadHash: String,
        headersOnly: Bool = false, now: Int = Int(Date().timeIntervalSince1970)
    ) throws(AuthFailure) -> String {
        guard let value = header("authorization") else {
            throw AuthFailure(code: .invalidAuthorization, message: "the request is not signed (no Authorization header)")
        }
        guard let authorization = TC3Signature.Authorization(value) else {
            throw AuthFailure(
                code: .invalidAuthorization,
                message:
                    "Authorization must be \"TC3-HMAC-SHA256 Credential=ID/DATE/scf/tc3_request, SignedHeaders=…, Signature=…\"")
        }
        guard authorization.signedHeaders.contains("host"), authorization.signedHeaders.contains("content-type") else {
            throw AuthFailure(code: .invalidAuthorization, message: "SignedHeaders must include content-type and host")
        }
        guard let stamp = header("x-tc-timestamp"), let timestamp = Int(stamp.trimmingCharacters(in: .whitespaces)) else {
            throw AuthFailure(code: .invalidAuthorization, message: "X-TC-Timestamp is missing or not a number")
        }
        guard abs(now - timestamp) <= allowedSkew else {
            throw AuthFailure(
                code: .signatureExpire,
                message:
                    "X-TC-Timestamp \(timestamp) is \(abs(now - timestamp)) s from the server's clock (at most \(allowedSkew))")
        }
        guard let secretKey = credentials.secretKey(for: authorization.secretID) else {
            throw AuthFailure(code: .secretIDNotFound, message: "no credential has the SecretId \(authorization.secretID)")
        }
        guard authorization.date == TC3Signature.date(ofTimestamp: timestamp) else {
            throw AuthFailure(
                code: .signatureFailure,
                message: "the credential's date \(authorization.date) is not the UTC date of X-TC-Timestamp")
        }
        guard authorization.service == TC3Signature.service else {
            throw AuthFailure(code: .signatureFailure, message: "the credential's service must be \(TC3Signature.service)")
        }
        var headers: [(name: String, value: String)] = []
        for name in authorization.signedHeaders {
            guard let value = header(name) else {
                throw AuthFailure(code: .invalidAuthorization, message: "the signed header \(name) is not in the request")
            }
            headers.append((name, value))
        }
        if headersOnly { return authorization.secretID }
        // As received; some clients sign the header values lower-cased (the document says so), so that form too.
        var request = TC3Signature.Request(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        if constantTimeEqual(TC3Signature.signature(request, timestamp: timestamp, secretKey: secretKey), authorization.signature)
        {
            return authorization.secretID
        }
        request.headers = headers.map { ($0.name, $0.value.lowercased()) }
        if constantTimeEqual(TC3Signature.signature(request, timestamp: timestamp, secretKey: secretKey), authorization.signature)
        {
            return authorization.secretID
        }
        throw AuthFailure(code: .signatureFailure, message: "the signature does not match the request")
    }

    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// The TCP listener's gate: every request but the open paths (`/healthz`, and `/metrics` when public) must be
/// signed; a refused one is answered 401 with its `AuthFailure` code and goes no further.
struct SignedRequests: RouterMiddleware {
    typealias Context = BasicRequestContext
    let verifier: RequestVerifier
    let openPaths: Set<String>
    /// The most body bytes read to hash a request whose body is signed (the API 3.0 limit, 10 MB).
    static let maxHashedBody = 10 << 20
    static let contentSHA256 = HTTPField.Name("X-TC-Content-SHA256")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        if openPaths.contains(request.uri.path) { return try await next(request, context) }
        var request = request
        do throws(AuthFailure) {
            let hash: String
            switch try RequestVerifier.payload(contentSHA256: request.headers[Self.contentSHA256]) {
            case .unsigned:
                hash = TC3Signature.unsignedPayload
            case .declared(let declared):
                hash = declared
                request.body = RequestBody(asyncSequence: HashCheckedBody(base: request.body, expected: declared))
            case .body:
                // Fails fast without reading the body when the headers alone are wrong.
                try verify(request, payloadHash: nil)
                let buffer: ByteBuffer
                do { buffer = try await request.collectBody(upTo: Self.maxHashedBody) } catch {
                    return ServiceAPI.json(
                        [
                            "Error": [
                                "Code": "InvalidParameter.RequestTooLarge",
                                "Message": "a signed body is at most 10 MB; send X-TC-Content-SHA256 for a larger one",
                            ]
                        ],
                        status: .notAcceptable)  // 406, as every oversized body of the API
                }
                hash = TC3Signature.sha256Hex(buffer.readableBytesView)
            }
            try verify(request, payloadHash: hash)
        } catch {
            return ServiceAPI.authFailure(error)
        }
        return try await next(request, context)
    }

    /// With `payloadHash` nil, checks only what the headers say (present, well formed, fresh, a known id).
    private func verify(_ request: Request, payloadHash: String?) throws(AuthFailure) {
        let header: (String) -> String? = { name in
            if name == "host" { return request.head.authority }
            return HTTPField.Name(name).flatMap { request.headers[$0] }
        }
        _ = try verifier.verify(
            method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", header: header,
            payloadHash: payloadHash ?? "", headersOnly: payloadHash == nil)
    }
}

/// A request body that fails at its end unless its bytes hash to the `X-TC-Content-SHA256` that was signed,
/// so that what consumes it (an upload) keeps nothing of a body that was swapped.
struct HashCheckedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let expected: String

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let expected: String
        var hasher = SHA256()

        mutating func next() async throws -> ByteBuffer? {
            guard let buffer = try await base.next() else {
                let actual = TC3Signature.hex(hasher.finalize())
                if actual != expected {
                    throw AuthFailure(code: .signatureFailure, message: "the body does not match its signed X-TC-Content-SHA256")
                }
                return nil
            }
            hasher.update(data: buffer.readableBytesView)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), expected: expected) }
}
