import Bootstrap

extension FunctionPool {
    /// One invocation's outcome, with what the executor logs and reports about it.
    public struct Outcome: Sendable {
        public let requestID: String
        /// The instance that took the invocation; nil when none did (refused, or it could not start).
        public let instanceID: String?
        /// The function's answer, or why there is none.
        public let result: Result<HTTPResponse, InvocationError>
        /// The cold start's phases when this invocation started the instance; nil when it reused a warm one
        /// (or when no instance started).
        public let coldStart: PhaseTimings?
        public let duration: Duration
        public let maxMemoryUsedBytes: Int64?
        /// The instance's output lines of this invocation (and, on a cold start, its init output before them).
        public let logLines: [String]

        /// The response, or the error the invocation failed with.
        public var response: HTTPResponse {
            get throws(InvocationError) { try result.get() }
        }

        /// 0 when the function answered, else the contract's error code.
        public var code: Int {
            switch result {
            case .success: return 0
            case .failure(let error): return error.code.rawValue
            }
        }

        static func refused(_ requestID: String, _ error: InvocationError) -> Outcome {
            Outcome(
                requestID: requestID, instanceID: nil, result: .failure(error), coldStart: nil, duration: .zero,
                maxMemoryUsedBytes: nil,
                logLines: error.output.map { $0.split(separator: "\n").map(String.init) } ?? [])
        }
    }
}
