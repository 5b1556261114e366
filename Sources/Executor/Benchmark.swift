import Bootstrap
import Foundation
import ImageRuntime
import Sandbox

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

/// `faasbox bench`: repeated cold starts and warm invocations in one process, and sandbox-only starts.
public struct Benchmark: Sendable {
    public let store: ImageStore
    public let config: FunctionConfig

    public init(store: ImageStore, config: FunctionConfig) {
        self.store = store
        self.config = config
    }

    /// `count` cold starts of `image` (stored first, so PullCode is the stored path), each answering one request.
    public func coldStarts(image: String, request: HTTPRequest, count: Int, progress: (Int) -> Void = { _ in })
        async throws -> [Samples]
    {
        _ = try await store.pull(image)
        var pull = Samples("PullCode"), runtime = Samples("InitRuntime"), function = Samples("InitFunction")
        var cold = Samples("Coldstart"), first = Samples("first response")
        let clock = ContinuousClock()
        for i in 0..<count {
            let begin = clock.now
            let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
            _ = try await instance.invoke(request, requestID: "bench-\(i)", timeout: config.timeout)
            first.add(clock.now - begin)
            await instance.stop()
            pull.add(instance.timings.pullCode)
            runtime.add(instance.timings.initRuntime)
            function.add(instance.timings.initFunction)
            cold.add(instance.timings.coldstart)
            progress(i + 1)
        }
        return [pull, runtime, function, cold, first]
    }

    /// `count` invocations of one warm instance.
    public func warmInvocations(image: String, request: HTTPRequest, count: Int) async throws -> Samples {
        let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
        var samples = Samples("warm invoke")
        let clock = ContinuousClock()
        do {
            for i in 0..<count {
                let begin = clock.now
                _ = try await instance.invoke(request, requestID: "warm-\(i)", timeout: config.timeout)
                samples.add(clock.now - begin)
            }
        } catch {
            await instance.stop()
            throw error
        }
        await instance.stop()
        return samples
    }

    /// `count` sandboxes over the image's rootfs running `program` to its exit: InitRuntime (spawn until
    /// exec) and the whole run until the sandbox is gone, to compare with `runc run` and `bwrap`.
    public func sandboxRuns(image: String, program: [String], count: Int) async throws -> [Samples] {
        let pulled = try await store.pull(image)
        var runtime = Samples("InitRuntime"), total = Samples("spawn to exit")
        let clock = ContinuousClock()
        for i in 0..<count {
            let id = "bench-\(i)-\(UInt32.random(in: 0...UInt32.max))"
            let rootfs = try store.composeRootfs(pulled, instanceID: id)
            let begin = clock.now
            let process = try await Sandbox.spawn(SandboxSpec(rootfs: rootfs.path, arguments: program, instanceID: id))
            runtime.add(clock.now - begin)
            _ = await process.wait()
            total.add(clock.now - begin)
            await process.stop()
            rootfs.remove()
        }
        return [runtime, total]
    }
}
