import NIOCore

extension Duration {
    /// The duration in milliseconds, as a Double.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    /// The duration as NIO's TimeAmount (nanoseconds, saturating).
    var timeAmount: TimeAmount {
        let (seconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .nanoseconds(.max) : .nanoseconds(seconds &+ components.attoseconds / 1_000_000_000)
    }
}

extension Int64 {
    var toMB: Double { Double(self) / 1_048_576 }
}
