import Foundation
import TestSupport
import Testing

@testable import ImageRuntime

@Suite struct ImageStoreTests {
    let dir = TestPaths.temporaryDirectory("image")

    func store() throws -> ImageStore { try ImageStore(root: "\(dir)/state") }

    func build(_ builder: OCIArchiveBuilder, _ name: String = "image.tar") throws -> String {
        let path = "\(dir)/\(name)"
        try builder.write(to: path)
        return path
    }

    /// Layer directories and temporaries currently in the store.
    func layerDirectories() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/state/layers/sha256")) ?? [])
            + ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/state/layers")) ?? []).filter {
                $0.hasPrefix(".tmp")
            }
    }

    @Test func pullsTheUmociBuiltSampleAndReusesItsLayer() async throws {
        let image = TestPaths.sampleImage("hello-web")
        #expect(FileManager.default.fileExists(atPath: image), "run scripts/build-images first")
        let store = try store()
        let first = try await store.pull(image)
        #expect(first.layers.count == 1)
        #expect(first.stats.layersUnpacked == 1)
        #expect(first.stats.entriesUnpacked > 200)
        #expect(first.config.config?.env?.contains("PATH=/usr/local/bin:/usr/bin:/bin") == true)
        let bootstrap = "\(first.layers[0].path)/scf_bootstrap"
        #expect(FileManager.default.isExecutableFile(atPath: bootstrap))
        let second = try await store.pull(image)
        #expect(second.stats.layersReused == 1 && second.stats.layersUnpacked == 0)
        #expect(second.manifestDigest == first.manifestDigest)
    }

    @Test func unpacksModesOwnersSymlinksAndHardlinksExactly() async throws {
        var setuid = TestEntry.file("bin/tool", "x", mode: 0o4755)
        setuid.uid = 123
        setuid.gid = 456
        let path = try build(
            OCIArchiveBuilder(layers: [
                .init([
                    .dir("bin"), setuid, .symlink("bin/link", to: "/etc/shadow"), .hardlink("bin/hard", to: "bin/tool"),
                    .file("deep/nested/dir/file", "content"),
                ])
            ]))
        let image = try await store().pull(path)
        let root = image.layers[0].path
        var st = stat()
        #expect(stat("\(root)/bin/tool", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o4755)
        #expect(st.st_uid == 123 && st.st_gid == 456)
        #expect(st.st_nlink == 2)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/bin/link") == "/etc/shadow")
        #expect(try String(contentsOfFile: "\(root)/deep/nested/dir/file", encoding: .utf8) == "content")
    }

    @Test func missingImageIsNotFound() async throws {
        await #expect {
            _ = try await store().pull("\(dir)/nope.tar")
        } throws: { error in
            guard case ImageError.notFound(let path) = error else { return false }
            return path.hasSuffix("nope.tar")
        }
    }

    @Test func aFileThatIsNotATarIsNotAnImageLayout() async throws {
        let path = "\(dir)/random.tar"
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: path))
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.notAnImageLayout = error { return true } else { return false }
        }
    }

    @Test func aTarWithoutIndexIsNotAnImageLayout() async throws {
        let path = "\(dir)/plain.tar"
        try Data(OCIArchiveBuilder.tar([.file("hello.txt", "hi")])).write(to: URL(fileURLWithPath: path))
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            guard case ImageError.notAnImageLayout(_, let reason) = error else { return false }
            return reason.contains("index.json")
        }
    }

    @Test func aTamperedLayerBlobIsRefusedAndNothingIsKept() async throws {
        var builder = OCIArchiveBuilder(layers: [.init([.file("a", "1")])])
        builder.corruptLayerBlob = 0
        let path = try build(builder)
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.digestMismatch(let blob, _, _) = error { return blob.contains("blobs/sha256/") }
            return false
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test func aWrongDiffIDIsRefusedAndNoHalfLayerRemains() async throws {
        var builder = OCIArchiveBuilder(layers: [.init([.file("a", "1"), .file("b", "2")])])
        builder.corruptDiffID = 0
        let path = try build(builder)
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.diffIDMismatch = error { return true } else { return false }
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test(arguments: ["../escape", "a/../../escape", "/etc/evil"])
    func entriesOutsideTheRootAreRefused(_ entryPath: String) async throws {
        let path = try build(OCIArchiveBuilder(layers: [.init([.file("ok", "1"), .file(entryPath, "pwned")])]))
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.entryEscapesRoot(let entry) = error { return entry == entryPath }
            return false
        }
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/state/escape"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/escape"))
        #expect(layerDirectories().isEmpty)
    }

    @Test func aPathThroughASymlinkedParentIsRefused() async throws {
        let outside = "\(dir)/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let path = try build(OCIArchiveBuilder(layers: [.init([.symlink("a", to: outside), .file("a/passwd", "pwned")])]))
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.unsafeEntry(let entry, _) = error { return entry == "a/passwd" }
            return false
        }
        #expect(!FileManager.default.fileExists(atPath: "\(outside)/passwd"))
        #expect(layerDirectories().isEmpty)
    }

    @Test func aHardlinkOutOfTheTreeIsRefused() async throws {
        let path = try build(OCIArchiveBuilder(layers: [.init([.hardlink("shadow", to: "../../../../etc/shadow")])]))
        await #expect {
            _ = try await store().pull(path)
        } throws: { error in
            if case ImageError.entryEscapesRoot(let entry) = error { return entry.hasPrefix("shadow") }
            return false
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test func aTruncatedGzipLayerIsAnErrorNotAPartialLayer() async throws {
        let big = (0..<200).map { TestEntry.file("f\($0)", String(repeating: "x\($0)", count: 500)) }
        var builder = OCIArchiveBuilder(layers: [.init(big)])
        builder.truncateLayerBlob = 0
        let path = try build(builder)
        await #expect(throws: ImageError.self) { _ = try await store().pull(path) }
        #expect(layerDirectories().isEmpty)
    }

    @Test func theEntryLimitStopsAnImage() async throws {
        var limits = UnpackLimits()
        limits.maxEntries = 10
        let path = try build(OCIArchiveBuilder(layers: [.init((0..<50).map { .file("f\($0)", "x") })]))
        let store = try ImageStore(root: "\(dir)/state", limits: limits)
        await #expect {
            _ = try await store.pull(path)
        } throws: { error in
            if case ImageError.limitExceeded(let what) = error { return what.contains("entries") }
            return false
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test func aTagSelectsTheImageAndAnUnknownTagListsTheTags() async throws {
        let path = try build(OCIArchiveBuilder(layers: [.init([.file("a", "1")])]))
        _ = try await store().pull("\(path):latest")
        await #expect {
            _ = try await store().pull("\(path):v9")
        } throws: { error in
            guard case ImageError.tagNotFound(let tag, let available) = error else { return false }
            return tag == "v9" && available == ["latest"]
        }
    }
}

@Suite struct ImageRecordTests {
    let dir = TestPaths.temporaryDirectory("records")

    @Test func anUnchangedArchiveIsServedFromItsRecordAndARewrittenOneIsReadAgain() async throws {
        let path = "\(dir)/img.tar"
        try OCIArchiveBuilder(layers: [.init([.file("a", "1")])]).write(to: path)
        let store = try ImageStore(root: "\(dir)/state")
        let first = try await store.pull(path)
        let again = try await store.pull(path)
        #expect(again.manifestDigest == first.manifestDigest && again.layers == first.layers)
        #expect(again.stats.layersReused == 1)
        // A new archive at the same path (different content) must not be answered from the old record.
        try OCIArchiveBuilder(layers: [.init([.file("a", "2")])]).write(to: path)
        let rewritten = try await store.pull(path)
        #expect(rewritten.manifestDigest != first.manifestDigest)
        #expect(rewritten.stats.layersUnpacked == 1)
        #expect(try String(contentsOfFile: "\(rewritten.layers[0].path)/a", encoding: .utf8) == "2")
    }

    @Test func rmiThenGCFreesOnlyUnreferencedLayers() async throws {
        try OCIArchiveBuilder(layers: [.init([.file("shared", "s")]), .init([.file("only-a", "a")])]).write(to: "\(dir)/a.tar")
        try OCIArchiveBuilder(layers: [.init([.file("shared", "s")])]).write(to: "\(dir)/b.tar")
        let store = try ImageStore(root: "\(dir)/state")
        let a = try await store.pull("\(dir)/a.tar")
        let b = try await store.pull("\(dir)/b.tar")
        #expect(b.stats.layersReused == 1, "the shared layer is unpacked once")
        #expect(store.images().count == 2)
        #expect(try store.removeImage(a.manifestDigest) == [a.manifestDigest])
        let removed = store.collectGarbage()
        #expect(removed.layers == 1)
        // Its blocks, counted as they go: the layer's one file and directory, its blobs (a few KB each).
        #expect(removed.bytes >= 8192 && removed.bytes < 1 << 20, "\(removed.bytes)")
        #expect(!FileManager.default.fileExists(atPath: a.layers[1].path))
        #expect(FileManager.default.fileExists(atPath: b.layers[0].path))
        await #expect(throws: ImageError.self) { _ = try store.removeImage("sha256:ffff") }
    }

    @Test func gcKeepsTheLayersOfRunningInstancesWhileColdStartsRunBesideIt() async throws {
        try OCIArchiveBuilder(layers: [.init([.file("base", "b")]), .init([.file("app", "a")])]).write(to: "\(dir)/a.tar")
        let images = try ImageStore(root: "\(dir)/state")
        let image = try await images.pull("\(dir)/a.tar")
        // No image record references the layers any more (`faasbox rmi` while the function runs): only the
        // instances do. The first one holds them while more cold-start beside a gc that runs again and again.
        _ = try images.removeImage(image.manifestDigest)
        let first = try images.composeRootfs(image, instanceID: "first")
        let results = await withTaskGroup(of: Swift.Result<InstanceRootfs, ImageError>?.self) { group in
            for i in 0..<16 {
                group.addTask {
                    Swift.Result { () throws(ImageError) in try images.composeRootfs(image, instanceID: "cold-\(i)") }
                }
            }
            group.addTask {
                for _ in 0..<40 { _ = images.collectGarbage() }
                return nil
            }
            return await group.reduce(into: [Swift.Result<InstanceRootfs, ImageError>]()) { all, result in
                if let result { all.append(result) }
            }
        }
        var all = [first]
        for result in results {
            switch result {
            case .success(let rootfs): all.append(rootfs)
            case .failure(let error): Issue.record("a cold start beside gc failed: \(error)")
            }
        }
        #expect(all.count == 17)
        for rootfs in all {
            #expect(try String(contentsOfFile: rootfs.path + "/base", encoding: .utf8) == "b", "\(rootfs.path)")
            #expect(try String(contentsOfFile: rootfs.path + "/app", encoding: .utf8) == "a", "\(rootfs.path)")
        }
        #expect(image.layers.allSatisfy { FileManager.default.fileExists(atPath: $0.path) }, "in use: kept")
        #expect(images.collectGarbage().layers == 0)
        for rootfs in all { rootfs.remove() }
        #expect(images.collectGarbage().layers == 2, "unused once the instances are gone")
        #expect(image.layers.allSatisfy { !FileManager.default.fileExists(atPath: $0.path) })
        await #expect {
            _ = try images.composeRootfs(image, instanceID: "late")
        } throws: { error in
            guard case .layerMissing = error as? ImageError else { return false }
            return true
        }
    }
}
