import ArgumentParser
import Foundation
import Sandbox

struct SeccompProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp-profile",
        abstract: "Print the default seccomp profile as JSON (a starting point for --seccomp-profile).")

    func run() async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(SeccompProfile.default), as: UTF8.self))
    }
}
