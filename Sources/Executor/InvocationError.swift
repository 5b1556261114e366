import Bootstrap

/// Why an invocation got no answer: the instance's error (it could not start, or the invocation failed), or
/// the pool's refusal. Each has the contract's error code.
public enum InvocationError: Error, Sendable, CustomStringConvertible {
    /// What the instance reported (its code: 405, 406, 430, 433, 434, 439, 500, …).
    case instance(BootstrapError)
    /// As many invocations as the function's concurrency limit allows are running (432).
    case concurrencyLimitExceeded(limit: Int)

    public var code: SCFContract.ErrorCode {
        switch self {
        case .instance(let error): return error.code
        case .concurrencyLimitExceeded: return .concurrencyLimitExceeded
        }
    }

    public var description: String {
        switch self {
        case .instance(let error): return error.description
        case .concurrencyLimitExceeded(let limit):
            return "the function's concurrency limit (\(limit)) is reached; try again later"
        }
    }

    /// What the function printed before it failed, where that is known.
    public var output: String? {
        if case .instance(let error) = self { return error.output }
        return nil
    }
}
