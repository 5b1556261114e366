import Foundation
import SystemSupport
import TestSupport
import Testing

@testable import ImageRuntime

/// Layers are stored in overlayfs form; composing them must give the OCI semantics of applying them in order.
@Suite struct OverlayTests {
    let dir = TestPaths.temporaryDirectory("overlay")

    @Test func whiteoutsOpaqueDirectoriesAndReplacementsComposeAsTheSpecSays() async throws {
        var builder = OCIArchiveBuilder(layers: [
            .init([
                .dir("etc"), .file("etc/keep", "lower"), .file("etc/gone", "lower"),
                .dir("opaque"), .file("opaque/old", "lower"), .file("replaced", "lower-file"),
            ]),
            .init([
                .file("etc/.wh.gone", ""), .file("opaque/.wh..wh..opq", ""), .file("opaque/new", "upper"),
                .symlink("replaced", to: "etc/keep"),
            ]),
        ])
        builder.env = []
        try builder.write(to: "\(dir)/img.tar")
        let store = try ImageStore(root: "\(dir)/state")
        let image = try await store.pull("\(dir)/img.tar")
        #expect(image.layers.count == 2)
        let rootfs = try store.composeRootfs(image, instanceID: "overlay-test")
        defer { rootfs.remove() }
        let fm = FileManager.default
        #expect(try String(contentsOfFile: "\(rootfs.path)/etc/keep", encoding: .utf8) == "lower")
        #expect(!fm.fileExists(atPath: "\(rootfs.path)/etc/gone"))
        #expect(try fm.contentsOfDirectory(atPath: "\(rootfs.path)/opaque") == ["new"])
        #expect(try fm.destinationOfSymbolicLink(atPath: "\(rootfs.path)/replaced") == "etc/keep")
        // The lower layer itself is untouched.
        #expect(fm.fileExists(atPath: "\(image.layers[0].path)/etc/gone"))
    }

    /// Without overlayfs, the hard-link farm must give exactly the tree the overlay gives.
    @Test func theHardlinkFarmComposesTheSameTreeAsTheOverlay() async throws {
        try OCIArchiveBuilder(layers: [
            .init([
                .dir("etc"), .file("etc/keep", "lower"), .file("etc/gone", "lower"), .dir("opaque"),
                .file("opaque/old", "lower"), .file("replaced", "lower-file"), .symlink("link-then-dir", to: "/etc"),
            ]),
            .init([
                .file("etc/.wh.gone", ""), .file("opaque/.wh..wh..opq", ""), .file("opaque/new", "upper"),
                .symlink("replaced", to: "etc/keep"), .dir("link-then-dir"), .file("link-then-dir/f", "x"),
                .hardlink("etc/keep-link", to: "opaque/new"),
            ]),
        ]).write(to: "\(dir)/img.tar")
        let store = try ImageStore(root: "\(dir)/state")
        let image = try await store.pull("\(dir)/img.tar")
        let overlay = try InstanceRootfs.compose(image, in: store.instanceDirectory("ov"), mode: .overlay)
        defer { overlay.remove() }
        let farm = try InstanceRootfs.compose(image, in: store.instanceDirectory("farm"), mode: .hardlinkFarm)
        #expect(!FileSystem.isMountPoint(farm.path))
        let differences = try TreeSnapshot(overlay.path).differences(to: TreeSnapshot(farm.path))
        #expect(differences.isEmpty, "\(differences)")
        #expect(farm.remove() == nil)
        #expect(
            try String(contentsOfFile: "\(image.layers[1].path)/opaque/new", encoding: .utf8) == "upper",
            "removing the farm leaves the store's files")
    }

    @Test func removingTheRootfsUnmountsAndDeletesIt() async throws {
        try OCIArchiveBuilder(layers: [.init([.file("a", "1")])]).write(to: "\(dir)/img.tar")
        let store = try ImageStore(root: "\(dir)/state")
        let image = try await store.pull("\(dir)/img.tar")
        let rootfs = try store.composeRootfs(image, instanceID: "rm-test")
        #expect(FileSystem.isMountPoint(rootfs.path))
        try Data("w".utf8).write(to: URL(fileURLWithPath: "\(rootfs.path)/written"))
        #expect(rootfs.remove() == nil)
        #expect(!FileSystem.isMountPoint(rootfs.path))
        #expect(!FileManager.default.fileExists(atPath: rootfs.directory))
        #expect(!FileManager.default.fileExists(atPath: "\(image.layers[0].path)/written"))
        #expect(rootfs.remove() == nil)  // idempotent
    }
}
