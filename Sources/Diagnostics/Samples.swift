import Bootstrap
import Foundation

/// Samples of one measured quantity and their summary.
public struct Samples: Sendable {
    public let name: String
    public private(set) var values: [Double] = []  // milliseconds

    public init(_ name: String) { self.name = name }

    public mutating func add(_ duration: Duration) { values.append(duration.milliseconds) }

    /// The q-quantile (nearest rank) of the samples.
    public func quantile(_ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }

    public var median: Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    public var row: String {
        let cells = [values.min() ?? .nan, median, quantile(0.9), quantile(0.99), values.max() ?? .nan]
            .map { String(format: "%9.3f", $0) }
        return name.padding(toLength: 16, withPad: " ", startingAt: 0) + cells.joined(separator: " ")
    }
}
