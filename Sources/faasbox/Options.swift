import ArgumentParser
import Foundation
import ImageRuntime

struct StateOptions: ParsableArguments {
    @Option(name: .long, help: "Where the layer store and instances live (env FAASBOX_STATE_DIR).")
    var stateDir: String = ProcessInfo.processInfo.environment["FAASBOX_STATE_DIR"] ?? "/var/lib/faasbox"

    /// The store under the state dir; a failure to open it ends the command with its message.
    func openStore() -> ImageStore {
        do { return try ImageStore(root: stateDir) } catch { fail(error.description) }
    }
}

/// Ends a command that needs root (namespaces, overlay mounts, cgroups) with that said, before it tries anything:
/// not a `Permission denied` from the first mkdir. (`doctor` says it instead of stopping.)
func requireRoot(_ command: String) {
    if geteuid() != 0 { fail("faasbox \(command) needs root (namespaces, overlay mounts, cgroups): run it as root or with sudo") }
}

/// Prints to stderr and exits non-zero: every failure of the CLI goes through here.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("faasbox: \(message)\n".utf8))
    exit(code)
}
