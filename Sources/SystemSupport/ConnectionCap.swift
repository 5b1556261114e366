import Synchronization

/// The connections a server has open, against a cap: each one is counted when it opens (over the cap too, so
/// that the one refused is counted until it closes) and uncounted when it closes.
public final class ConnectionCap: Sendable {
    public let limit: Int
    private let open = Atomic<Int>(0)
    public init(_ limit: Int) { self.limit = limit }

    /// Counts a new connection; false when it is over the cap.
    public func opened() -> Bool { open.wrappingAdd(1, ordering: .relaxed).newValue <= limit }
    public func closed() { open.wrappingSubtract(1, ordering: .relaxed) }
}
