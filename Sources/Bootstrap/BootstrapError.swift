import ImageRuntime
import Sandbox

/// Why an instance could not start or an invocation failed; each maps to the contract's error code.
public enum BootstrapError: Error, Sendable, CustomStringConvertible {
    case image(ImageError)
    case sandbox(SandboxError)
    case noBootstrap(image: String)
    /// The function never became ready within its init timeout.
    case initTimeout(Duration, output: String)
    /// The bootstrap exited before it became ready.
    case exitedDuringInit(ExitStatus, output: String)
    /// The function's connection broke, or it exited, during the invocation (439).
    case invocationFailed(String)
    /// faasbox itself failed (a bind, a thread, an unexpected error): not the function's doing (500).
    case internalError(String)
    /// The invocation ran past the function's timeout; the instance was killed.
    case timedOut(Duration)
    case invalidRequest(String)
    /// The function's response is over the contract's limit (407).
    case responseTooLarge(limit: Int)
    /// The function answered with something faasbox cannot relay: a response its HTTP/1.1 parser refuses, or
    /// `101 Switching Protocols` (502, with the reason).
    case badResponse(String)
    /// The function ran out of its memory during the invocation (the cgroup's OOM killer struck; 434).
    case memoryLimitExceeded(memoryMB: Int)
    /// The request is over the contract's limit (bytes, limit).
    case requestTooLarge(Int, limit: Int)
    /// The function reported an error for the invocation (runtime API `invocation/error`; 430).
    case functionError(String)
    /// A job function exited unsuccessfully (430), with what it printed.
    case jobFailed(ExitStatus, output: String)
    /// The caller gave up (Ctrl-C, shutdown); the instance was torn down.
    case cancelled

    public var code: SCFContract.ErrorCode {
        switch self {
        case .image, .sandbox: return .internalError
        case .noBootstrap, .exitedDuringInit, .initTimeout: return .containerStateExited
        case .invocationFailed: return .userProcessExited
        case .internalError: return .internalError
        case .timedOut: return .timeLimitReached
        case .invalidRequest: return .invalidParameter
        case .requestTooLarge: return .requestTooLarge
        case .responseTooLarge: return .responseTooLarge
        case .badResponse: return .badGateway
        case .memoryLimitExceeded: return .memoryLimitReached
        case .functionError, .jobFailed: return .userCodeError
        case .cancelled: return .internalError
        }
    }

    public var description: String {
        switch self {
        case .image(let e): return e.description
        case .sandbox(let e): return e.description
        case .noBootstrap(let image):
            return "\(image) has no Entrypoint or Cmd and no executable \(SCFContract.bootstrapName) in its WorkingDir, "
                + "\(SCFContract.bootstrapDirectories.joined(separator: " or ")); add one, or pass --command"
        case .initTimeout(let timeout, _): return SCFContract.initTimeoutMessage(timeout)
        case .exitedDuringInit(let status, _):
            return "the function's bootstrap \(status) before it listened on port \(SCFContract.functionPort) "
                + "(note: the root filesystem is read-only; only /tmp is writable)"
        case .invocationFailed(let message): return "invocation failed: \(message)"
        case .internalError(let message): return "internal error: \(message)"
        case .timedOut(let limit):
            return "the invocation timed out after \(Int(limit.milliseconds)) ms; the instance was killed"
        case .invalidRequest(let message): return "invalid request: \(message)"
        case .requestTooLarge(let size, let limit): return "the request is \(size) bytes, over the limit of \(limit)"
        case .responseTooLarge(let limit): return "the function's response is over the limit of \(limit) bytes"
        case .badResponse(let reason): return "bad gateway: the function's answer cannot be relayed: \(reason)"
        case .memoryLimitExceeded(let mb):
            return "the function exceeded its memory limit of \(mb) MB and was killed by the OOM killer"
        case .functionError(let message): return "the function returned an error: \(message)"
        case .jobFailed(let status, _): return "the job \(status)"
        case .cancelled: return "interrupted; the instance was torn down"
        }
    }

    /// What the function printed before it failed, where that is known.
    public var output: String? {
        switch self {
        case .initTimeout(_, let output), .exitedDuringInit(_, let output), .jobFailed(_, let output): return output
        default: return nil
        }
    }
}
