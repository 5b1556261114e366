import Foundation
import Sandbox
import TestSupport
import Testing

@testable import Bootstrap
@testable import ImageRuntime

@Suite struct BootstrapCommandTests {
    let rootfs: String

    init() throws {
        rootfs = TestPaths.temporaryDirectory("cmd")
        try FileManager.default.createDirectory(atPath: "\(rootfs)/var/user", withIntermediateDirectories: true)
    }

    func install(_ path: String, mode: Int = 0o755) throws {
        FileManager.default.createFile(
            atPath: rootfs + path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: mode])
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
        let (args, cwd) = try BootstrapCommand.resolve(
            config: FunctionConfig(name: "f"), image: image, rootfs: rootfs, imageName: "i")
        #expect(args == ["/entry", "a", "b"])
        #expect(cwd == "/app")
    }

    @Test func scfBootstrapIsFoundInVarUserThenRoot() throws {
        try install("/scf_bootstrap")
        try install("/var/user/scf_bootstrap")
        let (args, cwd) = try BootstrapCommand.resolve(
            config: FunctionConfig(name: "f"), image: nil, rootfs: rootfs, imageName: "i")
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

@Suite struct ImageUserTests {
    let rootfs: String

    init() throws {
        rootfs = TestPaths.temporaryDirectory("user")
        try FileManager.default.createDirectory(atPath: "\(rootfs)/etc", withIntermediateDirectories: true)
        try Data("root:x:0:0::/root:/bin/sh\napp:x:1500:1600::/app:/bin/sh\n".utf8)
            .write(to: URL(fileURLWithPath: "\(rootfs)/etc/passwd"))
        try Data("root:x:0:\nstaff:x:50:\n".utf8).write(to: URL(fileURLWithPath: "\(rootfs)/etc/group"))
    }

    @Test(arguments: [
        ("app", 1500, 1600), ("app:staff", 1500, 50), ("1500", 1500, 1600), ("42", 42, 42), ("42:7", 42, 7), ("root", 0, 0),
    ])
    func usersResolveAgainstTheImagesFiles(_ user: String, _ uid: Int, _ gid: Int) throws {
        let resolved = try ImageUser.resolve(user, rootfs: rootfs)
        #expect(resolved == SandboxSpec.User(uid: UInt32(uid), gid: UInt32(gid)))
    }

    @Test func anUnknownNameIsAClearError() throws {
        #expect(throws: BootstrapError.self) { try ImageUser.resolve("nobody-here", rootfs: rootfs) }
        #expect(throws: BootstrapError.self) { try ImageUser.resolve("app:nogroup", rootfs: rootfs) }
        #expect(try ImageUser.resolve("", rootfs: rootfs) == nil)
    }

    @Test func thePasswdFileIsReadInsideTheRootfs() throws {
        try FileManager.default.removeItem(atPath: "\(rootfs)/etc/passwd")
        // An absolute link resolves inside the rootfs (to its own /etc/passwd-real), not the host's.
        try Data("app:x:7:8::/:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: "\(rootfs)/etc/passwd-real"))
        try FileManager.default.createSymbolicLink(atPath: "\(rootfs)/etc/passwd", withDestinationPath: "/etc/passwd-real")
        #expect(try ImageUser.resolve("app", rootfs: rootfs) == SandboxSpec.User(uid: 7, gid: 8))
        #expect(throws: BootstrapError.self) { try ImageUser.resolve("root", rootfs: rootfs) }
    }
}
