import ArgumentParser
import Bootstrap
import Dispatch
import Executor
import Foundation
import ImageRuntime
import Sandbox
import Synchronization

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cold-start a function image, send it one request, print the answer and the Init Report (--log: all its logs).")

    @Argument(help: "An OCI image layout: an oci-archive tarball or a directory (PATH or PATH:tag).")
    var image: String

    @Option(help: "The request for a web function, as 'METHOD /path?query'.")
    var http: String = "GET /"

    @Option(
        help: """
            The function's kind: web (HTTP passthrough), event (POST /event-invoke on :9000, or the custom-runtime \
            event loop), job (runs to exit with the event in SCF_CUSTOM_CONTAINER_EVENT).
            """)
    var type: FunctionConfig.Kind = .web

    @Option(help: "The event for an event or job function: JSON, or @FILE to read it from a file.")
    var event: String = "{}"

    @Option(help: "Memory limit in MB (64–3072).")
    var memory: Int = SCFContract.defaultMemoryMB

    @Option(help: "Seconds one invocation may take before the instance is killed.")
    var timeout: Double = Double(SCFContract.defaultTimeout.components.seconds)

    @Option(help: "Seconds the function has to become ready (listen on port 9000, or report init/ready).")
    var initTimeout: Double = 30

    @Option(help: "Seconds between SIGTERM and SIGKILL when the instance is stopped.")
    var stopGrace: Double = 2

    @Flag(help: "Print the invocation's log: START, the function's output, END, REPORT (and the Init Report).")
    var log = false

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

    @Option(
        help: ArgumentHelp(
            "Run the instance in a user namespace of its own: ids 0-65535 inside are host ids BASE-(BASE+65535).",
            valueName: "BASE"))
    var userns: UInt32?

    @Option(help: "A seccomp profile (JSON, as `faasbox seccomp-profile` prints the default) instead of the default.")
    var seccompProfile: String?

    @Flag(help: "Log what the seccomp profile would deny instead of denying it (kernel audit log / dmesg).")
    var seccompLog = false

    @OptionGroup var state: StateOptions

    func validate() throws {
        guard SCFContract.memoryRangeMB.contains(memory) else {
            throw ValidationError("--memory must be within \(SCFContract.memoryRangeMB) MB")
        }
        guard initTimeout > 0 else { throw ValidationError("--init-timeout must be positive") }
        guard stopGrace >= 0 else { throw ValidationError("--stop-grace cannot be negative") }
        guard (1...900).contains(timeout) else { throw ValidationError("--timeout must be within 1–900 s") }
        for entry in environment where !entry.contains("=") { throw ValidationError("--env takes K=V, got '\(entry)'") }
    }

    func run() async throws {
        let invocation: OneShotRun.Invocation
        switch type {
        case .event, .job:
            invocation = .event(readEvent(event))
        case .web:
            do { invocation = .http(try HTTPRequest(parsing: http)) } catch { fail(error.description) }
        }
        var config = FunctionConfig(name: (image as NSString).lastPathComponent.components(separatedBy: ".").first ?? "function")
        config.memoryMB = memory
        config.kind = type
        config.initTimeout = .milliseconds(Int64(initTimeout * 1000))
        config.timeout = .milliseconds(Int64(timeout * 1000))
        config.stopGrace = .milliseconds(Int64(stopGrace * 1000))
        config.hostNetwork = hostNetwork
        config.userNamespace = userns.map { SandboxSpec.UserNamespace(hostID: $0, count: 65_536) }
        if let seccompProfile {
            do {
                config.seccompProfile = try JSONDecoder().decode(
                    SeccompProfile.self, from: Data(contentsOf: URL(fileURLWithPath: seccompProfile)))
            } catch { fail("--seccomp-profile \(seccompProfile): \(error)") }
        }
        if seccompLog { config.seccompProfile = config.seccompProfile?.loggingOnly }
        if let command { config.command = [command] }
        if !args.isEmpty { config.arguments = args }
        for entry in environment {
            let eq = entry.firstIndex(of: "=")!
            config.environment[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        let store = state.openStore()
        Sandbox.prepareHost()  // host detection is once per process, not part of an instance's InitRuntime
        // Ctrl-C or SIGTERM cancels the run; every path out of it stops the instance first.
        let imageReference = image
        var failureLog: (@Sendable ([String]) -> Void)?
        if log { failureLog = Run.printLines }
        // A web function's response is printed as it arrives (chunked responses, server-sent events).
        let sink = OneShotRun.Sink(
            head: { head in
                var text = "HTTP/1.1 \(head.status) \(head.reason)\n"
                for (name, value) in head.headers { text += "\(name): \(value)\n" }
                FileHandle.standardOutput.write(Data((text + "\n").utf8))
            },
            body: { piece in FileHandle.standardOutput.write(Data(piece)) })
        let work = Task { () throws(BootstrapError) -> OneShotRun.Result in
            try await OneShotRun(store: store, config: config).run(
                image: imageReference, invocation: invocation, streamingTo: sink,
                failureLog: failureLog)  // with --log, a failed invocation's log too
        }
        let signals = SignalTrap { work.cancel() }
        defer { withExtendedLifetime(signals) {} }
        let result: OneShotRun.Result
        do {
            result = try await work.value
        } catch let error as BootstrapError {
            if case .cancelled = error { fail(error.description, code: 130) }
            if let output = error.output, !output.isEmpty {
                FileHandle.standardError.write(Data("function output:\n\(output)\n".utf8))
            }
            fail("[\(error.code.rawValue)] \(error.description)")
        } catch {
            fail("\(error)")
        }
        printResult(result)
        if log { for line in result.logLines { print(line) } }
        print(result.initReport)
    }

    @Sendable static func printLines(_ lines: [String]) { print(lines.joined(separator: "\n")) }

    /// Web functions: the HTTP response; event functions: the return value; jobs: nothing (they exited 0).
    private func printResult(_ result: OneShotRun.Result) {
        let body = result.response.bodyText
        switch result.protocolKind {
        case .http:
            print("")  // the response itself was printed as it arrived
        case .eventInvoke, .runtimeAPI:
            print(body, terminator: body.hasSuffix("\n") ? "" : "\n")
        case .job:
            break
        }
        if log { print("") }
    }
}

/// Runs `handler` once on SIGINT or SIGTERM (instead of dying with the instance still up).
final class SignalTrap: @unchecked Sendable {  // immutable after init
    private let sources: [DispatchSourceSignal]

    init(_ handler: @escaping @Sendable () -> Void) {
        sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }
}

extension FunctionConfig.Kind: ExpressibleByArgument {}
