import Crypto
import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What the store remembers of a pulled image: enough to skip re-reading an unchanged archive (a stored
/// image's PullCode is a few stats and one small file), and to know which layers are in use for `gc`.
public struct ImageRecord: Codable, Sendable {
    public var source: String
    public var tag: String?
    public var manifestDigest: String
    public var config: ImageConfig
    public var diffIDs: [String]
    public var pulledAt: Date
    /// The identity of the source when it was pulled (device, inode, size, mtime, tag).
    var sourceKey: String
}

extension ImageStore {
    /// An identity for an archive file (or a layout directory's index.json) that changes when it is rewritten.
    static func sourceKey(path: String, tag: String?) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            guard stat("\(path)/index.json", &st) == 0 else { return nil }
        }
        return
            "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec):\(tag ?? "")"
    }

    /// The stored image for an unchanged source whose layers are all still in the store, or nil.
    func storedImage(path: String, key: String) -> PulledImage? {
        guard let digestBytes = try? FileSystem.read(paths.source(key: key), limit: 256) else { return nil }
        let manifestDigest = String(decoding: digestBytes, as: UTF8.self)
        guard let bytes = try? FileSystem.read(paths.record(manifestDigest: manifestDigest)),
            let record = try? JSONDecoder().decode(ImageRecord.self, from: Data(bytes)),
            record.sourceKey == key
        else { return nil }
        var layers: [StoredLayer] = []
        for diffID in record.diffIDs {
            guard let digest = try? Digest(parsing: diffID) else { return nil }
            let path = paths.layer(digest)
            guard FileSystem.exists(path) else { return nil }
            layers.append(StoredLayer(diffID: diffID, path: path))
        }
        return PulledImage(
            source: path, manifestDigest: record.manifestDigest, config: record.config, layers: layers,
            stats: PullStats()
        ).reused
    }

    /// Remembers a pulled image (its record, and its source's identity).
    func remember(_ image: PulledImage, tag: String?, key: String?) throws(ImageError) {
        let record = ImageRecord(
            source: image.source, tag: tag, manifestDigest: image.manifestDigest, config: image.config,
            diffIDs: image.layers.map(\.diffID), pulledAt: Date(), sourceKey: key ?? "")
        do {
            try FileSystem.createDirectory(paths.sources)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            guard let json = try? encoder.encode(record) else {
                throw ImageError.malformed(what: "image record", reason: "cannot encode")
            }
            try FileSystem.writeAtomically(paths.record(manifestDigest: image.manifestDigest), [UInt8](json))
            if let key { try FileSystem.writeAtomically(paths.source(key: key), Array(image.manifestDigest.utf8)) }
        } catch let error as SystemCallError {
            throw .system(error)
        } catch let error as ImageError {
            throw error
        } catch {
            throw .malformed(what: "image record", reason: "\(error)")
        }
    }

    /// Every image the store has a record of, newest first.
    public func images() -> [ImageRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.records)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            (try? FileSystem.read("\(paths.records)/\(name)")).flatMap {
                try? JSONDecoder().decode(ImageRecord.self, from: Data($0))
            }
        }.sorted { $0.pulledAt > $1.pulledAt }
    }

    /// Forgets the images whose manifest digest starts with `reference` (with or without `sha256:`), or whose
    /// source path is `reference`. Their layers stay until `gc`. Returns the digests removed.
    public func removeImage(_ reference: String) throws(ImageError) -> [String] {
        let wanted = reference.hasPrefix("sha256:") ? reference : "sha256:" + reference
        let matches = images().filter { $0.manifestDigest.hasPrefix(wanted) || $0.source == reference }
        if matches.isEmpty { throw .notFound(path: reference) }
        for record in matches {
            unlink(paths.record(manifestDigest: record.manifestDigest))
            if !record.sourceKey.isEmpty { unlink(paths.source(key: record.sourceKey)) }
        }
        return matches.map(\.manifestDigest)
    }
}
