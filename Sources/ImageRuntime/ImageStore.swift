import Dispatch
import Foundation
import Logging
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One layer of a pulled image, unpacked in the store.
public struct StoredLayer: Sendable, Equatable {
    public let diffID: String
    public let path: String
}

/// What a pull did, for `faasbox pull` and the PullCode phase.
public struct PullStats: Sendable {
    public var bytesUnpacked: Int64 = 0
    public var entriesUnpacked = 0
    public var layersReused = 0
    public var layersUnpacked = 0
}

/// A verified image whose layers are all in the store.
public struct PulledImage: Sendable {
    public let source: String
    public let manifestDigest: String
    public let config: ImageConfig
    /// Bottom layer first.
    public let layers: [StoredLayer]
    public let stats: PullStats

    /// The same image as a later pull finds it: every layer reused.
    var reused: PulledImage {
        var stats = PullStats()
        stats.layersReused = layers.count
        return PulledImage(source: source, manifestDigest: manifestDigest, config: config, layers: layers, stats: stats)
    }
}

/// The content-addressed store: verified blobs, and layers unpacked once per diff_id, shared by all images.
/// Layers are unpacked into a temporary directory and renamed into place only when complete and verified.
public final class ImageStore: Sendable {
    public let root: String
    public let limits: UnpackLimits
    private let logger: Logger
    /// Images pulled by this process, by source identity: a stored image's PullCode is then a stat and a
    /// look-up (the layers are still checked to be in the store).
    private let pulled = Mutex<[String: PulledImage]>([:])

    /// Where the store keeps what.
    let paths: StoreLayout
    let lock: StoreLock
    var blobs: BlobDirectory { BlobDirectory(path: paths.blobs) }

    public init(root: String, limits: UnpackLimits = UnpackLimits(), logger: Logger = Logger(label: "faasbox.image"))
        throws(ImageError)
    {
        self.root = root
        self.limits = limits
        self.logger = logger
        paths = StoreLayout(root: root)
        lock = StoreLock(path: paths.lock)
        do throws(SystemCallError) {
            // The state dir holds functions' environments, credentials and every image's files: nothing in it
            // is readable by others (StoreLayout.directories has the modes).
            try FileSystem.createDirectory(root, mode: 0o711)
            if chmod(root, 0o711) != 0 { throw SystemCallError.current("chmod", path: root) }
            for (dir, mode) in paths.directories {
                try FileSystem.createDirectory(dir, mode: mode)
                if chmod(dir, mode) != 0 { throw SystemCallError.current("chmod", path: dir) }
            }
        } catch { throw .system(error) }
        removeAbandonedTemporaries()
    }

    /// Verifies the image at `reference` (`PATH` or `PATH:tag`) and unpacks the layers the store lacks.
    public func pull(_ reference: String) async throws(ImageError) -> PulledImage {
        try await runBlocking { () throws(ImageError) -> PulledImage in try self.pullBlocking(reference) }
    }

    func pullBlocking(_ reference: String) throws(ImageError) -> PulledImage {
        let (path, tag) = Self.split(reference)
        let key = Self.sourceKey(path: path, tag: tag)
        if let key, let known = pulled.withLock({ $0[key] }), known.layers.allSatisfy({ FileSystem.exists($0.path) }) {
            return known.reused
        }
        if let key, let stored = storedImage(path: path, key: key) {
            pulled.withLock { $0[key] = stored }
            return stored
        }
        // A stored image needs no lock: `composeRootfs` checks its layers again under it. A fresh pull holds it
        // shared until its layers are on record, so a gc cannot take them for unused in between.
        let image = try lock.withShared { () throws(ImageError) -> PulledImage in
            let image = try pullFresh(path: path, tag: tag)
            try remember(image, tag: tag, key: key)
            return image
        }
        if let key { pulled.withLock { $0[key] = image.reused } }
        return image
    }

    private func pullFresh(path: String, tag: String?) throws(ImageError) -> PulledImage {
        let layout = try ImageLayout.open(path: path, store: blobs, limits: limits)
        let manifestDescriptor = try ManifestSelector(layout: layout, limits: limits).select(tag: tag)
        let manifest: Manifest = try decode(
            layout.readBlob(manifestDescriptor, limits: limits), "manifest \(manifestDescriptor.digest)")
        guard MediaType.configs.contains(manifest.config.mediaType) else {
            throw .unsupportedMediaType(manifest.config.mediaType, digest: manifest.config.digest)
        }
        let config: ImageConfig = try decode(layout.readBlob(manifest.config, limits: limits), "config \(manifest.config.digest)")
        guard config.os == Platform.linuxAMD64.os, config.architecture == Platform.linuxAMD64.architecture else {
            throw .noMatchingPlatform(wanted: Platform.linuxAMD64.description, available: ["\(config.os)/\(config.architecture)"])
        }
        if manifest.layers.count != config.rootfs.diffIDs.count {
            throw .layerCountMismatch(layers: manifest.layers.count, diffIDs: config.rootfs.diffIDs.count)
        }
        let (layers, stats) = try ensureLayers(Array(zip(manifest.layers, config.rootfs.diffIDs)), layout: layout)
        return PulledImage(source: path, manifestDigest: manifestDescriptor.digest, config: config, layers: layers, stats: stats)
    }

    /// `PATH:tag` → (PATH, tag) when PATH exists and the whole string does not.
    public static func split(_ reference: String) -> (String, String?) {
        if FileSystem.exists(reference) { return (reference, nil) }
        guard let colon = reference.lastIndex(of: ":"), !reference[colon...].contains("/") else { return (reference, nil) }
        let path = String(reference[..<colon])
        return FileSystem.exists(path) ? (path, String(reference[reference.index(after: colon)...])) : (reference, nil)
    }

    private func decode<T: Decodable>(_ bytes: [UInt8], _ what: String) throws(ImageError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw .malformed(what: what, reason: "\(error)")
        }
    }

    // MARK: - Layers

    /// Unpacks the missing layers of one image in parallel (one per core at most). Each layer may use the
    /// image's whole budget; the sum is checked once all are done.
    private func ensureLayers(_ pairs: [(Descriptor, String)], layout: ImageLayout) throws(ImageError) -> (
        [StoredLayer], PullStats
    ) {
        let results = Mutex<[Int: Result<(StoredLayer, PullStats), ImageError>]>([:])
        DispatchQueue.concurrentPerform(iterations: pairs.count) { i in
            var stats = PullStats()
            let result: Result<(StoredLayer, PullStats), ImageError>
            do throws(ImageError) {
                let layer = try ensureLayer(pairs[i].0, diffID: pairs[i].1, layout: layout, stats: &stats)
                result = .success((layer, stats))
            } catch {
                result = .failure(error)
            }
            results.withLock { $0[i] = result }
        }
        var layers: [StoredLayer] = []
        var total = PullStats()
        for i in pairs.indices {
            let (layer, stats) = try results.withLock { $0[i]! }.get()
            layers.append(layer)
            total.bytesUnpacked += stats.bytesUnpacked
            total.entriesUnpacked += stats.entriesUnpacked
            total.layersReused += stats.layersReused
            total.layersUnpacked += stats.layersUnpacked
        }
        if total.bytesUnpacked > limits.maxTotalBytes || total.entriesUnpacked > limits.maxEntries {
            throw .limitExceeded(
                "the image's layers together unpack to \(total.bytesUnpacked) bytes in \(total.entriesUnpacked) entries")
        }
        return (layers, total)
    }

    private func ensureLayer(_ descriptor: Descriptor, diffID: String, layout: ImageLayout, stats: inout PullStats)
        throws(ImageError) -> StoredLayer
    {
        guard MediaType.layers.contains(descriptor.mediaType) else {
            throw .unsupportedMediaType(descriptor.mediaType, digest: descriptor.digest)
        }
        let blobDigest = try Digest(parsing: descriptor.digest)
        let diff = try Digest(parsing: diffID)
        let final = paths.layer(diff)
        if FileSystem.exists(final) {
            stats.layersReused += 1
            return StoredLayer(diffID: diffID, path: final)
        }
        let tmp = paths.temporaryLayer()
        let claim: OwnedFileDescriptor
        do {
            try FileSystem.createDirectory(tmp, mode: 0o755)
            claim = try TemporaryClaim.claim(tmp)
        } catch { throw .system(error) }
        defer { claim.close() }
        do throws(ImageError) {
            let (bytes, entries) = try unpack(
                blob: layout.blobPath(blobDigest), into: tmp, descriptor: descriptor,
                digest: blobDigest, diffID: diff, verifyBlob: !layout.blobsVerified,
                budget: stats)
            if rename(tmp, final) != 0 {
                // Another pull finished the same layer first: keep theirs.
                guard errno == ENOTEMPTY || errno == EEXIST else { throw ImageError.system(.current("rename", path: final)) }
                try? FileSystem.removeTree(tmp)
                stats.layersReused += 1
            } else {
                stats.layersUnpacked += 1
            }
            stats.bytesUnpacked += bytes
            stats.entriesUnpacked += entries
        } catch {
            try? FileSystem.removeTree(tmp)
            throw error
        }
        return StoredLayer(diffID: diffID, path: final)
    }

    private func unpack(
        blob: String, into directory: String, descriptor: Descriptor, digest: Digest, diffID: Digest,
        verifyBlob: Bool, budget: PullStats
    ) throws(ImageError) -> (Int64, Int) {
        let file: OwnedFileDescriptor
        do { file = try .open(blob, O_RDONLY) } catch {
            if error.errno == .noSuchFileOrDirectory { throw .blobMissing(digest: descriptor.digest) }
            throw .system(error)
        }
        var st = stat()
        if fstat(file.rawValue, &st) != 0 { throw .system(.current("fstat", path: blob)) }
        if Int64(st.st_size) != descriptor.size {
            throw .sizeMismatch(blob: descriptor.digest, expected: descriptor.size, actual: Int64(st.st_size))
        }
        let stream = try LayerStream(
            file: file, label: descriptor.digest, verifyCompressed: verifyBlob ? digest.algorithm : nil,
            diffIDAlgorithm: diffID.algorithm, limits: limits,
            bytesBudget: limits.maxTotalBytes - budget.bytesUnpacked)
        defer { stream.stop() }
        let unpacker = try LayerUnpacker(directory: directory, limits: limits, logger: logger)
        try unpacker.unpack(stream.tar, entryBudget: limits.maxEntries - budget.entriesUnpacked)
        let result = try stream.finish()
        if let actual = result.compressed, actual != digest {
            throw .digestMismatch(blob: descriptor.digest, expected: digest.description, actual: actual.description)
        }
        if result.diffID != diffID {
            throw .diffIDMismatch(layer: descriptor.digest, expected: diffID.description, actual: result.diffID.description)
        }
        return (result.size, unpacker.entries)
    }

    /// Removes the temporaries no writer claims (a crash or kill -9 mid-pull or mid-upload): see TemporaryClaim.
    private func removeAbandonedTemporaries() {
        for dir in [paths.layers, paths.blobs, paths.uploads] {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names where name.hasPrefix(".tmp-") && !TemporaryClaim.isClaimed("\(dir)/\(name)") {
                try? FileSystem.removeTree("\(dir)/\(name)")
            }
        }
    }
}
