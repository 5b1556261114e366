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

/// Prints to stderr and exits non-zero: every failure of the CLI goes through here.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("faasbox: \(message)\n".utf8))
    exit(code)
}
