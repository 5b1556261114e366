import Bootstrap
import Foundation

/// The result of one invocation in the shape of TencentCloud's `Invoke` API (contract §5).
public struct InvokeResult: Codable, Sendable, Equatable {
    public var functionRequestID: String
    /// 0 when the function succeeded, else the contract's error code.
    public var invokeResult: Int
    /// The function's return value as a string.
    public var retMsg: String
    public var errMsg: String
    /// Milliseconds.
    public var duration: Double
    /// Milliseconds, rounded up to the next whole one (SCF bills at 1 ms).
    public var billDuration: Int
    /// Peak memory of the instance, bytes.
    public var memUsage: Int64
    /// The invocation's log, when asked for with `X-Scf-Log-Type: Tail`.
    public var log: String?

    enum CodingKeys: String, CodingKey {
        case functionRequestID = "FunctionRequestId", invokeResult = "InvokeResult", retMsg = "RetMsg", errMsg = "ErrMsg"
        case duration = "Duration", billDuration = "BillDuration", memUsage = "MemUsage", log = "Log"
    }

    /// The result of `outcome`; `log` is its log text when the caller asked for it.
    public init(_ outcome: FunctionPool.Outcome, log: String?) {
        let ms = outcome.duration.milliseconds
        functionRequestID = outcome.requestID
        duration = (ms * 1000).rounded() / 1000
        billDuration = Int(ms.rounded(.up))
        memUsage = outcome.maxMemoryUsedBytes ?? 0
        self.log = log
        invokeResult = outcome.code
        switch outcome.result {
        case .success(let response):
            retMsg = response.bodyText
            errMsg = ""
        case .failure(let error):
            retMsg = ""
            errMsg = error.description
        }
    }

    public var succeeded: Bool { invokeResult == 0 }
}
