import ArgumentParser
import Executor
import Foundation

/// A function's options as `run` and `deploy` take them (and, through `FunctionSpec`, the API does): parsed
/// here into a `FunctionSpec`, checked by its one validator (`FunctionSpec.validated`), which names the field
/// it refuses.
struct FunctionOptions: ParsableArguments {
    @Option(
        help: """
            The function's kind: web (HTTP passthrough), event (POST /event-invoke on :9000, or the custom-runtime \
            event loop), job (runs to exit with the event in SCF_CUSTOM_CONTAINER_EVENT).
            """)
    var type = "web"

    @Option(help: "Memory limit in MB (64–3072, in steps of 64).")
    var memory: Int?

    @Option(help: "A CPU quota in cores (0.05–64); by default a share of the CPU in proportion to the memory.")
    var cpus: Double?

    @Option(help: "Seconds one invocation may take before the instance is killed (1–900).")
    var timeout: Int?

    @Option(help: "Seconds the function has to become ready: listen on port 9000, or report init/ready (1–300).")
    var initTimeout: Int?

    @Option(name: .customLong("env"), help: "An environment variable K=V for the function (repeatable).")
    var environment: [String] = []

    @Option(help: "Run this program instead of the image's Entrypoint / scf_bootstrap.")
    var command: String?

    @Option(
        name: .customLong("arg"), parsing: .unconditionalSingleValue,
        help: "An argument for the command (repeatable; replaces the image's Cmd).")
    var args: [String] = []

    @Flag(help: "Share the host's network namespace instead of an isolated one.")
    var hostNetwork = false

    @Option(help: "SOURCE:TARGET[:rw], a host directory in the instances (read-only unless :rw; repeatable).")
    var mount: [String] = []

    func validate() throws {
        for entry in environment where !entry.contains("=") { throw ValidationError("--env takes K=V, got '\(entry)'") }
        for text in mount where Self.mountSpec(text) == nil {
            throw ValidationError("--mount takes SOURCE:TARGET[:rw], got '\(text)'")
        }
    }

    /// The options as a function spec of `image`.
    func spec(image: String) -> FunctionSpec {
        var spec = FunctionSpec(image: image, type: type)
        (spec.memorySize, spec.timeout, spec.initTimeout) = (memory, timeout, initTimeout)
        spec.cpus = cpus
        var env: [String: String] = [:]
        for entry in environment {
            let eq = entry.firstIndex(of: "=")!  // checked by validate()
            env[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        spec.env = env
        spec.command = command.map { [$0] }
        spec.args = args.isEmpty ? nil : args
        spec.network = hostNetwork ? "host" : nil
        spec.mounts = mount.compactMap(Self.mountSpec)
        return spec
    }

    /// The command-line flag of a `FunctionSpec` field, for a refusal's message.
    static func flag(for field: String) -> String {
        let flags = ["memorySize": "memory", "initTimeout": "init-timeout", "mounts": "mount", "args": "arg"]
        return "--" + (flags[field] ?? field)
    }

    private static func mountSpec(_ text: String) -> FunctionSpec.MountSpec? {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 2 || (parts.count == 3 && parts[2] == "rw") else { return nil }
        return FunctionSpec.MountSpec(source: parts[0], target: parts[1], readOnly: parts.count == 2)
    }
}
