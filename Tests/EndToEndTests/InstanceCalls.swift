import Bootstrap
import Synchronization

/// The tests' shorthand for the instance's one entry point, `deliver`.
extension FunctionInstance {
    /// A web request, its response collected (bounded by a generous timeout where the test gives none).
    func invoke(_ request: HTTPRequest, requestID: String, timeout: Duration = .seconds(300)) async throws(BootstrapError)
        -> HTTPResponse
    {
        try await deliver(.http(request), requestID: requestID, timeout: timeout)
    }

    /// An event (JSON), checked as an event function's.
    func invokeEvent(_ event: [UInt8], requestID: String, timeout: Duration) async throws(BootstrapError) -> HTTPResponse {
        try await deliver(.event(try Event(event, kind: .event)), requestID: requestID, timeout: timeout)
    }

    /// A web request whose response is passed on as it arrives.
    func invokeStreaming(
        _ request: HTTPRequest, requestID: String, timeout: Duration,
        onHead: @escaping @Sendable (HTTPResponse) throws -> Void,
        onBody: @escaping @Sendable ([UInt8]) throws -> Void,
        onEnd: @escaping @Sendable () -> Void = {}
    ) async throws(BootstrapError) {
        _ = try await deliver(
            .http(request), requestID: requestID, timeout: timeout, sink: ResponseSink(head: onHead, body: onBody, end: onEnd))
    }
}
