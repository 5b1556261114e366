import ArgumentParser
import Bootstrap

struct SeccompProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp-profile",
        abstract: "Print the default seccomp profile as JSON (a starting point for --seccomp-profile).")

    func run() async throws {
        print(SeccompPolicy.default.json)
    }
}
