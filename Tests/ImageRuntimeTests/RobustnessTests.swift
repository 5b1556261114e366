import Foundation
import SystemSupport
import TestSupport
import Testing

@testable import ImageRuntime

@Suite struct RobustnessTests {
    let dir = TestPaths.temporaryDirectory("robust")

    func layerDirectories() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/state/layers/sha256")) ?? [])
            + ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/state/layers")) ?? []).filter {
                $0.hasPrefix(".tmp")
            }
    }

    @Test func aGzipBombIsStoppedByTheRatioBound() async throws {
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        try OCIArchiveBuilder(layers: [.init([.file("bomb", bytes: zeros, mode: 0o644)])]).write(to: "\(dir)/bomb.tar")
        var limits = UnpackLimits()
        limits.ratioGrace = 1 << 20
        limits.maxCompressionRatio = 50
        let store = try ImageStore(root: "\(dir)/state", limits: limits)
        await #expect {
            _ = try await store.pull("\(dir)/bomb.tar")
        } throws: { error in
            if case ImageError.limitExceeded(let what) = error { return what.contains("50×") }
            return false
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test func theTotalSizeBoundStopsAnImage() async throws {
        let data = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        try OCIArchiveBuilder(layers: [.init([.file("big", bytes: data, mode: 0o644)])]).write(to: "\(dir)/big.tar")
        var limits = UnpackLimits()
        limits.maxTotalBytes = 1 << 20
        await #expect {
            _ = try await ImageStore(root: "\(dir)/state", limits: limits).pull("\(dir)/big.tar")
        } throws: { error in
            if case ImageError.limitExceeded(let what) = error { return what.contains("total size") }
            return false
        }
        #expect(layerDirectories().isEmpty)
    }

    @Test func fifosAreCreated() async throws {
        try OCIArchiveBuilder(layers: [.init([.fifo("dev-null-copy")])]).write(to: "\(dir)/nodes.tar")
        let image = try await ImageStore(root: "\(dir)/state").pull("\(dir)/nodes.tar")
        var st = stat()
        #expect(lstat("\(image.layers[0].path)/dev-null-copy", &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFIFO)
    }

    @Test func longNamesDeviceNodesAndXattrsAreUnpacked() async throws {
        let longDir = (0..<12).map { "directory-\($0)-with-a-long-name" }.joined(separator: "/")  // ~ 380 bytes
        var tagged = TestEntry.file("tagged", "x")
        tagged.xattrs = ["user.faasbox": "kept"]
        try OCIArchiveBuilder(layers: [
            .init([
                .file(
                    "\(longDir)/file-with-a-name-that-is-longer-than-one-hundred-bytes-\(String(repeating: "x", count: 80))",
                    "deep"),
                .charDevice("null", major: 1, minor: 3), tagged,
            ])
        ]).write(to: "\(dir)/names.tar")
        let image = try await ImageStore(root: "\(dir)/state").pull("\(dir)/names.tar")
        let root = image.layers[0].path
        let deep =
            "\(root)/\(longDir)/file-with-a-name-that-is-longer-than-one-hundred-bytes-\(String(repeating: "x", count: 80))"
        #expect(try String(contentsOfFile: deep, encoding: .utf8) == "deep")
        var st = stat()
        #expect(lstat("\(root)/null", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0x103)  // makedev(1, 3)
        let taggedFile = try OwnedFileDescriptor.open("\(root)/tagged", O_RDONLY)
        #expect(ExtendedAttribute.get(taggedFile.fd, "user.faasbox", capacity: 16) == Array("kept".utf8))
    }

    /// A temporary is abandoned when no writer claims it, whatever pid its name carries: one named after a live
    /// process (this one; serve as pid 1 in a container has the same pid every time) but unclaimed is removed,
    /// a claimed one is kept.
    @Test func abandonedTemporariesGoByTheirClaimNotTheirPid() throws {
        let state = "\(dir)/claims"
        _ = try ImageStore(root: state)
        let layers = "\(state)/layers"
        let unclaimed = "\(layers)/.tmp-\(getpid())-1"
        let claimed = "\(layers)/.tmp-\(getpid())-2"
        let upload = "\(state)/uploads/.tmp-1-3"
        for path in [unclaimed, claimed] { try FileSystem.createDirectory(path) }
        #expect(FileManager.default.createFile(atPath: upload, contents: Data("x".utf8)))
        let claim = try TemporaryClaim.claim(claimed)
        let uploadClaim = try TemporaryClaim.claim(upload)
        _ = try ImageStore(root: state)
        #expect(!FileManager.default.fileExists(atPath: unclaimed), "unclaimed: removed though its pid is alive")
        #expect(FileManager.default.fileExists(atPath: claimed), "claimed: kept")
        #expect(FileManager.default.fileExists(atPath: upload), "a claimed upload: kept")
        claim.close()
        uploadClaim.close()
        _ = try ImageStore(root: state)
        #expect(!FileManager.default.fileExists(atPath: claimed) && !FileManager.default.fileExists(atPath: upload))
    }

    /// kill -9 of a pull mid-unpack leaves only a temporary directory, which the next store removes; the
    /// layer is then unpacked whole.
    @Test func aKilledPullLeavesNothingThatIsTakenAsComplete() async throws {
        let files = (0..<4000).map { i in TestEntry.file("d\(i % 40)/f\(i)", String(repeating: "line \(i)\n", count: 400)) }
        try OCIArchiveBuilder(layers: [.init(files)]).write(to: "\(dir)/many.tar")
        let binary = "\(TestPaths.packageRoot)/.build/debug/faasbox"
        try #require(FileManager.default.isExecutableFile(atPath: binary))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["pull", "\(dir)/many.tar", "--state-dir", "\(dir)/state"]
        try process.run()
        var sawTemporary = false
        for _ in 0..<5000 where !sawTemporary {
            sawTemporary = layerDirectories().contains { $0.hasPrefix(".tmp") }
            if !sawTemporary { usleep(200) }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try #require(sawTemporary, "the pull finished before it could be killed")
        #expect(!layerDirectories().contains { !$0.hasPrefix(".tmp") }, "no layer was published")
        let store = try ImageStore(root: "\(dir)/state")
        #expect(!layerDirectories().contains { $0.hasPrefix(".tmp") }, "the new store removed the abandoned temporary")
        let image = try await store.pull("\(dir)/many.tar")
        #expect(image.stats.entriesUnpacked == 4000)
        #expect(try String(contentsOfFile: "\(image.layers[0].path)/d39/f3999", encoding: .utf8).hasPrefix("line 3999\n"))
    }
}

@Suite struct PipelineTests {
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"))?.count ?? 0
    }

    /// A layer whose tar breaks at once while much decompressed data follows must not leave its decompressing
    /// thread (and its buffers) behind (found by scripts/fuzz: memory grew with every such input).
    @Test func anAbandonedLayerStreamEndsItsThread() throws {
        var garbage = [UInt8](repeating: 0x41, count: 512)  // not a tar header
        garbage += [UInt8](repeating: 0, count: 24 << 20)
        let blob = try OCIArchiveBuilder.gzip(garbage)
        let scratch = TestPaths.temporaryDirectory("pipeline")
        let before = Self.threadCount()
        for _ in 0..<30 { FuzzEntryPoints.unpackLayer([UInt8](blob), scratch: scratch) }
        usleep(100_000)
        #expect(Self.threadCount() < before + 10, "threads: \(before) before, \(Self.threadCount()) after")
    }
}
