import ArgumentParser

@main
struct Faasbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faasbox",
        abstract: "Run serverless functions delivered as OCI container images, fast and isolated.",
        subcommands: [Run.self, Pull.self, Images.self, Rmi.self, GC.self, Bench.self, Doctor.self, SeccompProfileCommand.self]
    )
}
