import Bootstrap
import Prometheus
import Synchronization

/// The service's Prometheus metrics (`GET /metrics`): invocations by result, durations, cold-start phases,
/// cold vs warm starts; instances by state and queue depth are set from the pools at scrape time.
final class ServiceMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
        .seconds(5), .seconds(10), .seconds(30),
    ]

    private func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "faasbox", metricName: metric, unitName: unit, helpText: help)
    }

    /// A function's metrics that every invocation touches, made once: the registry validates a metric's name,
    /// help text and labels each time one is asked for (~10 µs of the warm path).
    private struct Handles {
        let duration: DurationHistogram
        let warm: Counter
        let cold: Counter
        var byResult: [String: Counter] = [:]
    }
    private let handles = Mutex<[String: Handles]>([:])

    private func makeHandles(_ function: String) -> Handles {
        func starts(_ kind: String) -> Counter {
            registry.makeCounter(
                descriptor: name("starts", "total", "Invocations that started a new instance (cold) or reused one (warm)."),
                labels: [("function", function), ("start", kind)])
        }
        return Handles(
            duration: registry.makeDurationHistogram(
                descriptor: name("invocation_duration", "seconds", "Time from delivery to the function's answer."),
                labels: [("function", function)], buckets: Self.durationBuckets),
            warm: starts("warm"), cold: starts("cold"))
    }

    private func invocations(_ function: String, _ result: String) -> Counter {
        registry.makeCounter(
            descriptor: name("invocations", "total", "Invocations by function and result (success or the SCF error code)."),
            labels: [("function", function), ("result", result)])
    }

    /// Counts one invocation and its duration; on a cold start, the start's phases.
    func record(function: String, outcome: FunctionPool.Outcome) {
        let result = outcome.code == 0 ? "success" : String(outcome.code)
        let (counter, duration, start) = handles.withLock { all in
            var h = all[function] ?? makeHandles(function)
            let counter: Counter
            if let known = h.byResult[result] {
                counter = known
            } else {
                counter = invocations(function, result)
                h.byResult[result] = counter
                all[function] = h
            }
            return (counter, h.duration, outcome.coldStart == nil ? h.warm : h.cold)
        }
        counter.increment()
        duration.record(outcome.duration)
        guard outcome.instanceID != nil else { return }
        start.increment()
        if let t = outcome.coldStart { recordPhases(function, t) }
    }

    /// The phases of a cold start (also of provisioned instances).
    func recordPhases(_ function: String, _ t: PhaseTimings) {
        let phases: [(String, Duration)] = [
            ("PullCode", t.pullCode), ("InitRuntime", t.initRuntime), ("InitFunction", t.initFunction),
            ("Coldstart", t.coldstart),
        ]
        for (phase, value) in phases {
            registry.makeDurationHistogram(
                descriptor: name(
                    "cold_start_phase", "seconds", "Cold-start phases (PullCode, InitRuntime, InitFunction, Coldstart)."),
                labels: [("function", function), ("phase", phase)], buckets: Self.durationBuckets
            ).record(value)
        }
    }

    /// Sets the gauges that describe the present: instances by state, queue depth.
    func setGauges(instances: [String: [String: Int]], queueDepth: [String: Int]) {
        for (function, states) in instances {
            for state in ["idle", "busy"] {
                registry.makeGauge(
                    descriptor: name("instances", "", "Live instances by function and state."),
                    labels: [("function", function), ("state", state)]
                ).set(Double(states[state, default: 0]))
            }
        }
        for (function, depth) in queueDepth {
            registry.makeGauge(
                descriptor: name("async_queue_depth", "", "Async events queued or running, by function."),
                labels: [("function", function)]
            ).set(Double(depth))
        }
    }

    func countDeadLetter(function: String) {
        registry.makeCounter(
            descriptor: name("dead_letters", "total", "Async events given up after their last try."),
            labels: [("function", function)]
        ).increment()
    }

    func countLogsDropped(function: String, reason: String, count: Int) {
        guard count > 0 else { return }
        registry.makeCounter(
            descriptor: name(
                "logs_dropped", "total",
                "Invocation logs not kept, by function and reason (function-cap, total-cap, disk-reserve, backlog, error)."),
            labels: [("function", function), ("reason", reason)]
        ).increment(by: Int64(count))
    }

    /// The state dir's filesystem: its size and what is free.
    func setStateFilesystem(size: Int64, free: Int64) {
        registry.makeGauge(descriptor: name("state_fs_size", "bytes", "Size of the state dir's filesystem."), labels: [])
            .set(Double(size))
        registry.makeGauge(descriptor: name("state_fs_free", "bytes", "Free space on the state dir's filesystem."), labels: [])
            .set(Double(free))
    }

    var text: String { registry.emitToString() }
}
