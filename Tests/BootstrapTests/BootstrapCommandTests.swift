import Foundation
import Testing
import TestSupport
@testable import Bootstrap
@testable import ImageRuntime

@Suite struct BootstrapCommandTests {
    let rootfs: String

    init() throws {
        rootfs = TestPaths.temporaryDirectory("cmd")
        try FileManager.default.createDirectory(atPath: "\(rootfs)/var/user", withIntermediateDirectories: true)
    }

    func install(_ path: String, mode: Int = 0o755) throws {
        FileManager.default.createFile(atPath: rootfs + path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: mode])
    }

    @Test func configCommandWinsOverTheImage() throws {
        var config = FunctionConfig(name: "f")
        config.command = ["/bin/run"]
        config.arguments = ["--fast"]
        var image = ImageConfig.Runtime()
        image.entrypoint = ["/entry"]
        image.cmd = ["cmd"]
        let (args, _) = try BootstrapCommand.resolve(config: config, image: image, rootfs: rootfs, imageName: "i")
        #expect(args == ["/bin/run", "--fast"])
    }

    @Test func entrypointAndCmdComeBeforeScfBootstrap() throws {
        try install("/scf_bootstrap")
        var image = ImageConfig.Runtime()
        image.entrypoint = ["/entry"]
        image.cmd = ["a", "b"]
        image.workingDir = "/app"
        let (args, cwd) = try BootstrapCommand.resolve(config: FunctionConfig(name: "f"), image: image, rootfs: rootfs, imageName: "i")
        #expect(args == ["/entry", "a", "b"])
        #expect(cwd == "/app")
    }

    @Test func scfBootstrapIsFoundInVarUserThenRoot() throws {
        try install("/scf_bootstrap")
        try install("/var/user/scf_bootstrap")
        let (args, cwd) = try BootstrapCommand.resolve(config: FunctionConfig(name: "f"), image: nil, rootfs: rootfs, imageName: "i")
        #expect(args == ["/var/user/scf_bootstrap"])
        #expect(cwd == "/var/user")
    }

    @Test func aNonExecutableOrMissingBootstrapIsAClearError() throws {
        try install("/scf_bootstrap", mode: 0o644)
        #expect {
            _ = try BootstrapCommand.resolve(config: FunctionConfig(name: "f"), image: nil, rootfs: rootfs, imageName: "img.tar")
        } throws: { error in
            guard let e = error as? BootstrapError, case .noBootstrap = e else { return false }
            return e.code == .containerStateExited && e.description.contains("img.tar") && e.description.contains("scf_bootstrap")
        }
    }

    @Test func aBootstrapSymlinkCannotPointOutOfTheRootfs() throws {
        // /etc/hostname exists on the host and is not executable; /bin/sh is executable on the host.
        try FileManager.default.createSymbolicLink(atPath: "\(rootfs)/scf_bootstrap", withDestinationPath: "/bin/sh")
        #expect(throws: BootstrapError.self) {
            _ = try BootstrapCommand.resolve(config: FunctionConfig(name: "f"), image: nil, rootfs: rootfs, imageName: "i")
        }
    }
}
