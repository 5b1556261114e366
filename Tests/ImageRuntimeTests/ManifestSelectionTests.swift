import Foundation
import TestSupport
import Testing

@testable import ImageRuntime

@Suite struct ManifestSelectionTests {
    let dir = TestPaths.temporaryDirectory("select")

    func pull(_ builder: OCIArchiveBuilder) async throws -> PulledImage {
        try builder.write(to: "\(dir)/img.tar")
        return try await ImageStore(root: "\(dir)/state").pull("\(dir)/img.tar")
    }

    @Test func aNestedIndexIsWalkedToTheLinuxAMD64Manifest() async throws {
        var builder = OCIArchiveBuilder(layers: [.init([.file("a", "1")])])
        builder.nestedIndex = true
        builder.manifestPlatform = "linux/amd64"
        builder.decoys = [
            ("linux/arm64", "application/vnd.oci.image.manifest.v1+json"),
            ("linux/amd64", "application/vnd.example.unknown+json"),
        ]
        let image = try await pull(builder)
        #expect(image.layers.count == 1)
    }

    @Test func noMatchingPlatformListsWhatTheImageHas() async throws {
        var builder = OCIArchiveBuilder(layers: [.init([.file("a", "1")])])
        builder.manifestPlatform = "linux/arm64/v8"
        builder.decoys = [("windows/amd64", "application/vnd.oci.image.manifest.v1+json")]
        await #expect {
            _ = try await pull(builder)
        } throws: { error in
            guard case ImageError.noMatchingPlatform(let wanted, let available) = error else { return false }
            return wanted == "linux/amd64" && available == ["windows/amd64", "linux/arm64/v8"]
        }
    }

    @Test func aDockerSaveArchiveWrittenBySkopeoMatchesTheOCIOriginal() async throws {
        let archive = "\(dir)/docker.tar"
        try shell([
            "skopeo", "copy", "--quiet", "oci-archive:\(TestPaths.sampleImage("hello-web")):latest",
            "docker-archive:\(archive):example/hello:v1",
        ])
        let store = try ImageStore(root: "\(dir)/state")
        let docker = try await store.pull("\(archive):v1")
        let oci = try await store.pull(TestPaths.sampleImage("hello-web"))
        #expect(docker.layers == oci.layers, "same diff_ids, so the same stored layers")
        #expect(docker.config.config?.env == oci.config.config?.env)
        await #expect(throws: ImageError.self) { _ = try await store.pull("\(archive):v2") }
    }
}
