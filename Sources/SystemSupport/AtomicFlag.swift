import Synchronization

/// A flag that can be raised once; `setOnce()` tells the one caller that raised it.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func setOnce() -> Bool {
        value.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
