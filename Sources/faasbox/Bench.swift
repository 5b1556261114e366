import ArgumentParser
import Bootstrap
import Diagnostics
import Foundation
import ImageRuntime
import Synchronization
import SystemSupport

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure cold starts (phases), warm invocations, or sandbox starts of an image, in one process.")

    @Argument(help: "An OCI image (oci-archive or layout directory).")
    var image: String

    @Option(help: "The function's kind: web, event (event-invoke or runtime API) or job.")
    var type: FunctionConfig.Kind = .web

    @Option(help: "Cold starts to measure (each answers one invocation).")
    var cold = 20

    @Option(help: "Warm invocations of one instance to measure.")
    var warm = 200

    @Option(help: "Cold starts in flight at once (throughput is reported in starts per second).")
    var concurrency = 1

    @Flag(help: "Evict the image from the store before each cold start: PullCode is then a fresh unpack.")
    var freshPull = false

    @Option(help: "The request for a web function, as 'METHOD /path?query'.")
    var http = "GET /"

    @Option(help: "The event for an event or job function (JSON).")
    var event = "{}"

    @Option(help: "Instead: start this many instances, keep them idle, and report what each costs (density).")
    var idle: Int?

    @Option(
        parsing: .unconditionalSingleValue,
        help: "Instead: run this program of the image in a sandbox to its exit, --cold times (repeatable for its arguments).")
    var sandboxOnly: [String] = []

    @Flag(
        help: """
            Instead: start sandboxes running /bin/true (or the --sandbox-only program) with faasbox and, interleaved \
            in the same run, runc, crun and bwrap over the same rootfs, --cold times each, and print the ratios; \
            with --fresh-pull: unpack the image fresh with faasbox, umoci and tar instead.
            """)
    var compare = false

    @Option(
        help: ArgumentHelp(
            "The cold starts' instances as serve makes them: freezable after this many ms idle, or never.",
            valueName: "ms|never"))
    var freezeIdleAfter = FreezeDelay(SCFContract.defaultFreezeIdleAfter)

    @Flag(help: "Print JSON (host facts, samples, summaries) instead of a table.")
    var json = false

    @OptionGroup var state: StateOptions

    func validate() throws {
        guard cold >= 0, warm >= 0 else { throw ValidationError("--cold and --warm cannot be negative") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        if freshPull && concurrency > 1 && !compare {
            throw ValidationError("--fresh-pull evicts the image each time: use it with --concurrency 1")
        }
    }

    func run() async throws {
        requireRoot("bench")
        FunctionHost.prepare()
        let invocation: Invocation
        if type == .web {
            do { invocation = .http(try HTTPRequest(parsing: http)) } catch { fail(error.description) }
        } else {
            do { invocation = .event(try Event(Array(event.utf8), kind: type)) } catch {
                fail("[\(error.code.rawValue)] \(error.description)")
            }
        }
        var config = FunctionConfig(name: "bench")
        config.kind = type
        config.freezeIdleAfter = freezeIdleAfter.delay
        let bench = Benchmark(store: state.openStore(), config: config)
        var results: [Samples] = []
        var throughput: Double?
        if let idle { return try await runIdle(bench, invocation: invocation, count: idle) }
        if compare { return try await runCompare() }
        do {
            if !sandboxOnly.isEmpty {
                results = try await bench.sandboxRuns(image: image, program: sandboxOnly, count: cold)
            } else {
                if cold > 0 {
                    var options = Benchmark.ColdOptions()
                    options.freshPull = freshPull
                    options.concurrency = concurrency
                    let bar = ProgressBar(label: "cold starts", total: cold, enabled: !json)
                    let measured = try await bench.coldStarts(
                        image: image, invocation: invocation, count: cold, options: options, progress: bar.update)
                    bar.finish()
                    results += measured.samples
                    throughput = measured.throughput
                }
                if warm > 0 && type != .job {
                    let bar = ProgressBar(label: "warm invocations", total: warm, enabled: !json)
                    results += try await bench.warmInvocations(
                        image: image, invocation: invocation, count: warm, progress: bar.update)
                    bar.finish()
                }
            }
        } catch { fail("\(error)") }
        if json {
            try printJSON(jsonReport(results, throughput: throughput))
        } else {
            printHostFacts()
            print("phase (ms)              min    median       p90       p99       max")
            for samples in results { print(samples.row + "   (n=\(samples.values.count))") }
            if let throughput {
                print(String(format: "cold-start throughput: %.1f instances/s at concurrency %d", throughput, concurrency))
            }
        }
    }

    private func runCompare() async throws {
        let program = sandboxOnly.isEmpty ? ["/bin/true"] : sandboxOnly
        let bar = ProgressBar(label: "rounds", total: cold, enabled: !json)
        let result: PeerComparison.Result
        do {
            let store = state.openStore()
            if freshPull {
                result = try await PeerComparison(store: store)
                    .freshUnpacks(image: image, runs: cold, workDirectory: store.root, progress: bar.update)
            } else {
                let comparison = PeerComparison(store: store)
                let starts = try await comparison.sandboxStarts(image: image, program: program, runs: cold, progress: bar.update)
                if type == .web {
                    let path = (try? HTTPRequest(parsing: http))?.target ?? "/"
                    let web = try await comparison.firstResponses(image: image, path: path, runs: cold, progress: bar.update)
                    result = .init(samples: starts.samples + web.samples, unavailable: starts.unavailable + web.unavailable)
                } else {
                    result = starts
                }
            }
        } catch { fail("\(error)") }
        bar.finish()
        let faasbox = result.samples[0].median
        if json {
            try printJSON([
                "program": program, "runs": cold,
                "unavailable": Dictionary(uniqueKeysWithValues: result.unavailable.map { ($0.name, $0.reason) }),
                "medians": Dictionary(uniqueKeysWithValues: result.samples.map { ($0.name, $0.median) }),
            ])
            return
        }
        printHostFacts()
        print(
            freshPull
                ? "\(cold) rounds, interleaved, fresh unpacks of \(image); medians"
                : "\(cold) rounds, interleaved, \(program.joined(separator: " ")) in the image's rootfs; medians")
        let faasboxFirst = result.samples.first { $0.name == "faasbox first response" }?.median
        for samples in result.samples {
            let ratio =
                samples.name.hasPrefix("faasbox")
                ? ""
                : samples.name.hasSuffix("first response")
                    ? String(format: "   faasbox first response is %.2fx of it", (faasboxFirst ?? .nan) / samples.median)
                    : String(
                        format: freshPull ? "   faasbox is %.2fx faster" : "   faasbox InitRuntime is %.2fx of it",
                        freshPull ? samples.median / faasbox : faasbox / samples.median)
            print(
                samples.name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%9.3f ms", samples.median)
                    + ratio)
        }
        for (name, reason) in result.unavailable {
            print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + "failed here: \(reason)")
        }
    }

    private func runIdle(_ bench: Benchmark, invocation: Invocation, count: Int) async throws {
        raiseDescriptorLimit()
        let bar = ProgressBar(label: "idle instances", total: count, enabled: !json)
        let report: Benchmark.IdleReport
        do {
            report = try await bench.idleInstances(image: image, invocation: invocation, count: count, progress: bar.update)
        } catch { fail("\(error)") }
        bar.finish()
        let facts: [(String, Any)] = [
            ("instances", report.instances), ("stoppedBy", report.stoppedBy ?? "nothing"),
            ("faasboxKiBPerInstance", report.faasboxBytesPerInstance / 1024),
            ("instanceKiBPerInstance", report.instanceBytesPerInstance / 1024),
            ("descriptorsPerInstance", report.descriptorsPerInstance),
        ]
        if json {
            try printJSON(Dictionary(uniqueKeysWithValues: facts))
        } else {
            printHostFacts()
            print("idle instances held: \(report.instances) of \(count)" + (report.stoppedBy.map { " (stopped by \($0))" } ?? ""))
            print(
                String(
                    format: "per instance: faasbox %.0f KiB, instance cgroup %.0f KiB, %.1f descriptors",
                    report.faasboxBytesPerInstance / 1024, report.instanceBytesPerInstance / 1024, report.descriptorsPerInstance))
        }
    }

    /// Prints `object` as JSON, with the host's facts and the image added.
    private func printJSON(_ object: [String: Any]) throws {
        var object = object
        object["host"] = Dictionary(uniqueKeysWithValues: HostFacts.current.pairs)
        object["image"] = image
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        print(String(decoding: data, as: UTF8.self))
    }

    private func printHostFacts() {
        for (name, value) in HostFacts.current.pairs { print("\(name): \(value)") }
    }

    private func jsonReport(_ results: [Samples], throughput: Double?) -> [String: Any] {
        var object: [String: Any] = [
            "type": type.rawValue, "concurrency": concurrency, "freshPull": freshPull,
            "phases": results.map {
                [
                    "name": $0.name, "count": $0.values.count, "min": $0.values.min() ?? 0, "median": $0.median,
                    "p90": $0.quantile(0.9), "p99": $0.quantile(0.99), "max": $0.values.max() ?? 0, "samples": $0.values,
                ] as [String: Any]
            },
        ]
        if let throughput { object["coldStartsPerSecond"] = throughput }
        return object
    }
}

extension FunctionConfig.Kind: ExpressibleByArgument {}
