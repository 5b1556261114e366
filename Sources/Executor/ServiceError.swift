import Bootstrap

/// Why the service refused or failed a request; each maps to an HTTP status and the contract's error code.
public enum ServiceError: Error, Sendable, CustomStringConvertible {
    case noSuchFunction(String)
    case invalidSpec(FunctionSpec.Invalid)
    case invalidRequest(String)
    /// The function's async queue holds as many events as the contract allows.
    case queueFull(function: String, limit: Int)
    case noSuchRequest(String)
    case invocation(InvocationError)
    case database(String, String)
    /// Another faasbox serves this state dir.
    case stateDirInUse(String)
    case shuttingDown

    public var status: Int {
        switch self {
        case .noSuchFunction, .noSuchRequest: return 404
        case .invalidSpec, .invalidRequest: return 400
        case .queueFull: return 429
        case .invocation(let e): return e.code.rawValue
        case .database, .stateDirInUse: return 500
        case .shuttingDown: return 503
        }
    }

    /// The error code's name in the API's error body (TencentCloud style).
    public var codeName: String {
        switch self {
        case .noSuchFunction: return "ResourceNotFound.Function"
        case .noSuchRequest: return "ResourceNotFound.Request"
        case .invalidSpec(let invalid): return invalid.code
        case .invalidRequest: return "InvalidParameterValue"
        case .queueFull: return "LimitExceeded.AsyncQueue"
        case .invocation(let e): return "\(e.code)"
        case .database, .stateDirInUse: return "InternalError"
        case .shuttingDown: return "ServiceUnavailable"
        }
    }

    public var description: String {
        switch self {
        case .noSuchFunction(let name): return "no function named \(name) is deployed"
        case .noSuchRequest(let id): return "no invocation with request id \(id)"
        case .invalidSpec(let invalid): return "invalid function config: \(invalid)"
        case .invalidRequest(let message): return "invalid request: \(message)"
        case .queueFull(let function, let limit):
            return "the async queue of \(function) holds \(limit) events, the most it may; try again later"
        case .invocation(let e): return e.description
        case .database(let what, let error): return "state database: \(what): \(error)"
        case .stateDirInUse(let dir): return "another faasbox serve is using \(dir) (its lock is held)"
        case .shuttingDown: return "the server is shutting down"
        }
    }
}
