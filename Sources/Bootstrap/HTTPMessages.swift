/// An HTTP request to a function instance, and its answer.
public struct HTTPRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// Parses `METHOD /path?query` as the CLI takes it.
    public init(parsing line: String) throws(BootstrapError) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[1].hasPrefix("/") else {
            throw .invalidRequest("expected 'METHOD /path', got '\(line)'")
        }
        self.init(method: String(parts[0]).uppercased(), target: String(parts[1]))
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var reason: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, reason: String, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}
