import Foundation
import TestSupport
import Testing

@testable import ImageRuntime

/// Images written by real tools must compose to exactly the tree `umoci unpack` gives for them.
@Suite struct InteropTests {
    let dir = TestPaths.temporaryDirectory("interop")

    /// faasbox's composed rootfs and umoci's unpacked rootfs of `layout:tag`, compared entry by entry.
    func compare(archive: String, layout: String, tag: String = "latest") async throws {
        let store = try ImageStore(root: "\(dir)/state")
        let image = try await store.pull(archive)
        let rootfs = try store.composeRootfs(image, instanceID: "interop-\(UUID().uuidString.prefix(8))")
        defer { rootfs.remove() }
        let bundle = "\(dir)/bundle-\(UUID().uuidString.prefix(8))"
        try shell(["umoci", "unpack", "--image", "\(layout):\(tag)", bundle])
        let ours = try TreeSnapshot(rootfs.path)
        let theirs = try TreeSnapshot("\(bundle)/rootfs")
        let differences = ours.differences(to: theirs).filter { !$0.hasPrefix(".: ") }  // the root dir's own mode
        #expect(differences.isEmpty, "\(differences.prefix(20).joined(separator: "\n"))")
        #expect(ours.entries.count > 1)
        // The fallback for hosts without overlayfs gives the same tree.
        let farm = try InstanceRootfs.compose(
            image, in: store.instanceDirectory("farm-\(UUID().uuidString.prefix(8))"), mode: .hardlinkFarm)
        defer { farm.remove() }
        let farmDifferences = try TreeSnapshot(farm.path).differences(to: theirs).filter { !$0.hasPrefix(".: ") }
        #expect(farmDifferences.isEmpty, "hard-link farm: \(farmDifferences.prefix(20).joined(separator: "\n"))")
    }

    @Test func theUmociBuiltSampleMatchesUmociUnpack() async throws {
        let layout = "\(dir)/layout"
        try shell([
            "skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci:\(layout):latest",
        ])
        try await compare(archive: TestPaths.sampleImage("hello-web"), layout: layout)
    }

    /// Debian's umoci cannot read zstd layers, so the zstd copy is compared with umoci's unpack of the gzip
    /// original: the uncompressed layers (diff_ids) are the same.
    @Test func aZstdImageWrittenBySkopeoMatchesUmociUnpackOfTheGzipOriginal() async throws {
        let archive = "\(dir)/zstd.tar"
        try shell([
            "skopeo", "copy", "--quiet", "--dest-compress-format", "zstd",
            "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci-archive:\(archive):latest",
        ])
        let layout = "\(dir)/layout"
        try shell([
            "skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci:\(layout):latest",
        ])
        let manifest = try shell(["skopeo", "inspect", "--raw", "oci-archive:\(archive):latest"])
        #expect(manifest.contains("tar+zstd"))
        try await compare(archive: archive, layout: layout)
    }

    @Test func aLayoutDirectoryIsReadInPlace() async throws {
        let layout = "\(dir)/layout"
        try shell([
            "skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci:\(layout):latest",
        ])
        try await compare(archive: layout, layout: layout)
    }

    /// umoci repack writes the whiteouts itself: a deleted file, a replaced directory, a new hardlink.
    @Test func umociWhiteoutsAndOpaqueDirectoriesMatchUmociUnpack() async throws {
        let layout = "\(dir)/layout"
        try shell(["skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci:\(layout):base"])
        let bundle = "\(dir)/edit"
        try shell(["umoci", "unpack", "--image", "\(layout):base", bundle])
        let root = "\(bundle)/rootfs"
        let fm = FileManager.default
        try fm.removeItem(atPath: "\(root)/var/www/cgi-bin/hello")
        try fm.removeItem(atPath: "\(root)/usr/lib/hello-web")
        try fm.createDirectory(atPath: "\(root)/usr/lib/hello-web", withIntermediateDirectories: true)
        try Data("new".utf8).write(to: URL(fileURLWithPath: "\(root)/usr/lib/hello-web/only-new"))
        try Data("data".utf8).write(to: URL(fileURLWithPath: "\(root)/etc/motd"))
        try fm.linkItem(atPath: "\(root)/etc/motd", toPath: "\(root)/etc/motd.link")
        try fm.removeItem(atPath: "\(root)/bin/nc")
        try fm.createSymbolicLink(atPath: "\(root)/bin/nc", withDestinationPath: "/bin/false")
        try shell(["umoci", "repack", "--image", "\(layout):edited", bundle])
        let archive = "\(dir)/edited.tar"
        try shell(["skopeo", "copy", "--quiet", "oci:\(layout):edited", "oci-archive:\(archive):edited"])
        try await compare(archive: archive, layout: layout, tag: "edited")
        let store = try ImageStore(root: "\(dir)/state")
        #expect(try await store.pull(archive).layers.count == 2)
    }

    /// `podman save --format oci-archive` of an image podman made itself (podman import of the sample's tree).
    @Test func aPodmanSavedImageMatchesUmociUnpack() async throws {
        let layout = "\(dir)/layout"
        try shell(["skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest", "oci:\(layout):base"])
        try shell(["umoci", "unpack", "--image", "\(layout):base", "\(dir)/bundle"])
        try shell(["tar", "-C", "\(dir)/bundle/rootfs", "-cf", "\(dir)/root.tar", "."])
        let name = "localhost/faasbox-interop-\(UUID().uuidString.prefix(8).lowercased()):v1"
        try shell(["podman", "import", "--quiet", "\(dir)/root.tar", name])
        defer { _ = try? shell(["podman", "rmi", "--force", name]) }
        let archive = "\(dir)/podman.tar"
        try shell(["podman", "save", "--quiet", "--format", "oci-archive", "-o", archive, name])
        try shell(["skopeo", "copy", "--quiet", "oci-archive:\(archive)", "oci:\(layout):podman"])
        try await compare(archive: archive, layout: layout, tag: "podman")
    }
}
