import Crypto
import Foundation

/// TencentCloud API 3.0's request signature, TC3-HMAC-SHA256 (api3-contract §1.2): what a client sends in
/// `Authorization`, and what the server derives again to check it. One implementation for both sides, for
/// the native API over TCP and for the API 3.0 door.
public enum TC3Signature {
    public static let algorithm = "TC3-HMAC-SHA256"
    /// The service name in the credential scope: faasbox answers as SCF.
    public static let service = "scf"
    /// The payload hash a client may send instead of hashing the body (`X-TC-Content-SHA256`).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The parts of a request that are signed.
    public struct Request: Sendable {
        public var method: String
        /// The path as sent (`/` for API 3.0).
        public var path: String
        /// The raw query string, without `?` (empty for the SDK's POSTs).
        public var query: String
        /// The signed headers, names lower-cased, values as received (trimmed).
        public var headers: [(name: String, value: String)]
        /// Lower-case hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
        public var payloadHash: String

        public init(method: String, path: String, query: String, headers: [(name: String, value: String)], payloadHash: String) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }

        /// `content-type;host`: the signed header names, sorted, joined by `;`.
        public var signedHeaders: String { headers.map(\.name).sorted().joined(separator: ";") }

        public var canonical: String {
            let sorted = headers.sorted { $0.name < $1.name }
            let lines = sorted.map { "\($0.name):\($0.value.trimmingCharacters(in: .whitespaces))\n" }.joined()
            return [method, path, query, lines, signedHeaders, payloadHash].joined(separator: "\n")
        }
    }

    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256Hex(_ bytes: some DataProtocol) -> String { hex(SHA256.hash(data: bytes)) }

    /// `2023-11-14`: the UTC date of a Unix timestamp (never local time).
    public static func date(ofTimestamp timestamp: Int) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: TimeInterval(timestamp)))
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    public static func stringToSign(_ request: Request, timestamp: Int, service: String = service) -> String {
        let scope = "\(date(ofTimestamp: timestamp))/\(service)/tc3_request"
        return "\(algorithm)\n\(timestamp)\n\(scope)\n\(sha256Hex(Array(request.canonical.utf8)))"
    }

    /// The lower-case hex signature of `request` at `timestamp` with `secretKey`.
    public static func signature(_ request: Request, timestamp: Int, secretKey: String, service: String = service) -> String {
        func hmac(_ key: some ContiguousBytes, _ message: String) -> [UInt8] {
            Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: key)))
        }
        let secretDate = hmac(Array(("TC3" + secretKey).utf8), date(ofTimestamp: timestamp))
        let secretService = hmac(secretDate, service)
        let secretSigning = hmac(secretService, "tc3_request")
        return hex(hmac(secretSigning, stringToSign(request, timestamp: timestamp, service: service)))
    }

    /// The `Authorization` header value a client sends.
    public static func authorization(
        _ request: Request, timestamp: Int, secretID: String, secretKey: String, service: String = service
    ) -> String {
        let scope = "\(date(ofTimestamp: timestamp))/\(service)/tc3_request"
        let signature = signature(request, timestamp: timestamp, secretKey: secretKey, service: service)
        return "\(algorithm) Credential=\(secretID)/\(scope), SignedHeaders=\(request.signedHeaders), Signature=\(signature)"
    }

    /// An `Authorization` header taken apart.
    public struct Authorization: Sendable, Equatable {
        public let secretID: String
        public let date: String
        public let service: String
        public let signedHeaders: [String]
        public let signature: String

        /// Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=HEX`;
        /// nil when it is anything else.
        public init?(_ header: String) {
            guard header.hasPrefix(algorithm + " ") else { return nil }
            var fields: [String: String] = [:]
            for part in header.dropFirst(algorithm.count + 1).split(separator: ",") {
                let trimmed = part.trimmingCharacters(in: .whitespaces)
                guard let eq = trimmed.firstIndex(of: "=") else { return nil }
                fields[String(trimmed[..<eq])] = String(trimmed[trimmed.index(after: eq)...])
            }
            guard let credential = fields["Credential"], let signed = fields["SignedHeaders"],
                let signature = fields["Signature"]
            else { return nil }
            let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard scope.count == 4, !scope[0].isEmpty, scope[3] == "tc3_request" else { return nil }
            let names = signed.split(separator: ";").map { $0.lowercased() }
            guard !names.isEmpty, signature.count == 64, signature.allSatisfy(\.isHexDigit) else { return nil }
            (secretID, date, service, signedHeaders, self.signature) = (
                scope[0], scope[1], scope[2], names, signature.lowercased()
            )
        }
    }
}
