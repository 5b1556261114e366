import ArgumentParser
import Sandbox

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Report what this host supports and what faasbox will use.")

    func run() async throws {
        print("cgroups: \(CgroupHost.current)")
    }
}
