import Foundation
import Logging
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Entry points for the fuzz target (Sources/faasbox-fuzz): the parsers fed arbitrary bytes. Each must end
/// in a typed error or a result, never a crash, and never write outside `scratch`.
package enum FuzzEntryPoints {
    /// The bytes as index.json, a manifest and an image config.
    package static func parseMetadata(_ bytes: [UInt8]) {
        let data = Data(bytes)
        _ = try? JSONDecoder().decode(Index.self, from: data)
        _ = try? JSONDecoder().decode(Manifest.self, from: data)
        _ = try? JSONDecoder().decode(ImageConfig.self, from: data)
        _ = try? JSONDecoder().decode([DockerArchive.Entry].self, from: data)
        if let text = String(bytes: bytes.prefix(200), encoding: .utf8) { _ = try? Digest(parsing: text) }
    }

    /// The bytes as a layer blob (any compression), unpacked into a fresh directory under `scratch`.
    package static func unpackLayer(_ bytes: [UInt8], scratch: String) {
        let dir = "\(scratch)/layer-\(getpid())"
        try? FileSystem.removeTree(dir)
        _ = mkdir(dir, 0o755)
        defer { try? FileSystem.removeTree(dir) }
        guard let file = try? MemoryFile.holding(bytes, name: "fuzz") else { return }
        var limits = UnpackLimits()
        limits.maxTotalBytes = 64 << 20
        limits.maxEntries = 10_000
        do {
            let stream = try LayerStream(
                file: file, label: "fuzz", verifyCompressed: .sha256, diffIDAlgorithm: .sha256,
                limits: limits, bytesBudget: limits.maxTotalBytes)
            defer { stream.stop() }
            let unpacker = try LayerUnpacker(
                directory: dir, limits: limits, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
            try unpacker.unpack(stream.tar, entryBudget: limits.maxEntries)
            _ = try stream.finish()
        } catch {}
    }

    /// The bytes as an image archive (`faasbox pull`), into a store under `scratch`.
    package static func pullArchive(_ bytes: [UInt8], scratch: String) {
        let path = "\(scratch)/image-\(getpid()).tar"
        guard (try? Data(bytes).write(to: URL(fileURLWithPath: path))) != nil else { return }
        defer { unlink(path) }
        guard let store = try? ImageStore(root: "\(scratch)/store") else { return }
        _ = try? store.pullBlocking(path)
    }

}
