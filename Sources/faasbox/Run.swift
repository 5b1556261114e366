import ArgumentParser
import Bootstrap
import Dispatch
import Executor
import Foundation
import ImageRuntime
import Synchronization

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cold-start a function image, send it one request, print the answer and the Init Report (--log: all its logs).")

    @Argument(help: "An OCI image layout: an oci-archive tarball or a directory (PATH or PATH:tag).")
    var image: String

    @Option(help: "The request for a web function, as 'METHOD /path?query'.")
    var http: String = "GET /"

    @Option(help: "The event for an event or job function: JSON, or @FILE to read it from a file.")
    var event: String = "{}"

    @Option(help: "Seconds between SIGTERM and SIGKILL when the instance is stopped.")
    var stopGrace: Double = 2

    @Flag(help: "Print the invocation's log: START, the function's output, END, REPORT (and the Init Report).")
    var log = false

    @Option(
        help: ArgumentHelp(
            "Run the instance in a user namespace of its own: ids 0-65535 inside are host ids BASE-(BASE+65535).",
            valueName: "BASE"))
    var userns: UInt32?

    @Option(help: "A seccomp profile (JSON, as `faasbox seccomp-profile` prints the default) instead of the default.")
    var seccompProfile: String?

    @Flag(help: "Log what the seccomp profile would deny instead of denying it (kernel audit log / dmesg).")
    var seccompLog = false

    @OptionGroup var function: FunctionOptions
    @OptionGroup var state: StateOptions

    func validate() throws {
        guard stopGrace >= 0 else { throw ValidationError("--stop-grace cannot be negative") }
    }

    /// The function's name: the image file's, where SCF would take it as one (else "function").
    private var functionName: String {
        let name = (image as NSString).lastPathComponent.components(separatedBy: ".").first ?? ""
        return (try? FunctionSpec.checkName(name)) != nil ? name : "function"
    }

    func run() async throws {
        requireRoot("run")
        var config: FunctionConfig
        do { config = try function.spec(image: image).validated(name: functionName).config } catch {
            fail("\(FunctionOptions.flag(for: error.field)): \(error.reason)")
        }
        let invocation: Invocation
        switch config.kind {
        case .event, .job:
            do { invocation = .event(try Event(readEvent(event), kind: config.kind)) } catch {
                fail("[\(error.code.rawValue)] \(error.description)")
            }
        case .web:
            do { invocation = .http(try HTTPRequest(parsing: http)) } catch { fail(error.description) }
        }
        config.stopGrace = .milliseconds(Int64(stopGrace * 1000))
        config.userNamespace = userns.map { FunctionConfig.UserNamespace(hostID: $0) }
        if let seccompProfile {
            do { config.seccomp = try SeccompPolicy(json: Data(contentsOf: URL(fileURLWithPath: seccompProfile))) } catch {
                fail("--seccomp-profile \(seccompProfile): \(error)")
            }
        }
        if seccompLog { config.seccomp = config.seccomp?.loggingOnly }
        let store = state.openStore()
        FunctionHost.prepare()  // host detection is once per process, not part of an instance's InitRuntime
        // Ctrl-C or SIGTERM cancels the run; every path out of it stops the instance first.
        let imageReference = image
        var failureLog: (@Sendable ([String]) -> Void)?
        if log { failureLog = Run.printLines }
        // A web function's response is printed as it arrives (chunked responses, server-sent events).
        let sink = ResponseSink(
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
