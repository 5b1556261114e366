import ArgumentParser
import Bootstrap
import Executor
import Foundation
import ImageRuntime
import Sandbox

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure cold starts (phases), warm invocations, or sandbox starts of an image, in one process.")

    @Argument(help: "An OCI image (oci-archive or layout directory) of a web function.")
    var image: String

    @Option(help: "Cold starts to measure (each answers one request).")
    var cold = 20

    @Option(help: "Warm invocations of one instance to measure.")
    var warm = 200

    @Option(help: "The request, as 'METHOD /path?query'.")
    var http = "GET /"

    @Option(
        parsing: .unconditionalSingleValue,
        help: "Instead: run this program of the image in a sandbox to its exit, --cold times (repeatable for its arguments).")
    var sandboxOnly: [String] = []

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @OptionGroup var state: StateOptions

    func run() async throws {
        Sandbox.prepareHost()
        let request: HTTPRequest
        do { request = try HTTPRequest(parsing: http) } catch { fail(error.description) }
        let store = state.openStore()
        let bench = Benchmark(store: store, config: FunctionConfig(name: "bench"))
        var results: [Samples] = []
        do {
            if !sandboxOnly.isEmpty {
                results = try await bench.sandboxRuns(image: image, program: sandboxOnly, count: cold)
            } else {
                if cold > 0 { results += try await bench.coldStarts(image: image, request: request, count: cold) }
                if warm > 0 { results.append(try await bench.warmInvocations(image: image, request: request, count: warm)) }
            }
        } catch { fail("\(error)") }
        if json {
            let object = results.map {
                [
                    "name": $0.name, "count": $0.values.count, "min": $0.values.min() ?? 0, "median": $0.median,
                    "p90": $0.quantile(0.9), "p99": $0.quantile(0.99), "max": $0.values.max() ?? 0,
                ] as [String: Any]
            }
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]),
                    as: UTF8.self))
        } else {
            print("host: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(CgroupHost.current)")
            print("phase (ms)              min    median       p90       p99       max")
            for samples in results { print(samples.row + "   (n=\(samples.values.count))") }
        }
    }
}
