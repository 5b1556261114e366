import ArgumentParser

/// The release this build is (`faasbox --version`).
let faasboxVersion = "0.1.0-dev"

@main
struct Faasbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faasbox",
        abstract: "Run serverless functions delivered as OCI container images, fast and isolated.",
        version: "faasbox \(faasboxVersion)",
        subcommands: [
            Run.self, Pull.self, Images.self, Rmi.self, GC.self, Serve.self, Deploy.self, Invoke.self, ResultCommand.self,
            Logs.self, PS.self, Functions.self, Remove.self, Credentials.self, Bench.self, Doctor.self,
            SeccompProfileCommand.self,
        ]
    )
}
