import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `faasbox gc`: what no image on record and no instance uses goes.
extension ImageStore {
    /// Removes the layers and blobs no remaining image references, except the layers an instance uses (any
    /// instance of the store, of this process or another, a dead one's until it is cleaned). Decided from the
    /// store's own records — image records and each instance's `layers` list — under the store's lock held
    /// exclusive, so no pull or cold start records a layer between the decision and the removal. Returns
    /// what was removed, and the disk space that freed.
    public func collectGarbage() -> (layers: Int, blobs: Int, bytes: Int64) {
        lock.withExclusive { () -> (layers: Int, blobs: Int, bytes: Int64) in
            let records = images()
            let recorded = records.flatMap(\.diffIDs).compactMap { try? Digest(parsing: $0) }.map(paths.layer)
            let live = Set(recorded).union(layersInUse())
            var removedLayers = 0
            var bytes: Int64 = 0
            for algorithm in Digest.Algorithm.allCases {
                let dir = paths.layers(algorithm: algorithm)
                for hex in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                    let path = "\(dir)/\(hex)"
                    if live.contains(path) { continue }
                    if let freed = try? FileSystem.removeTree(path) {
                        removedLayers += 1
                        bytes += freed
                    }
                }
            }
            // Blobs are kept only for images on record: their manifests, configs and layers.
            var removedBlobs = 0
            let liveBlobs = referencedBlobs(records)
            let blobDir = paths.blob(algorithm: .sha256)
            for hex in (try? FileManager.default.contentsOfDirectory(atPath: blobDir)) ?? [] where !liveBlobs.contains(hex) {
                var st = stat()
                let blob = "\(blobDir)/\(hex)"
                let size = lstat(blob, &st) == 0 && st.st_nlink == 1 ? Int64(st.st_blocks) * 512 : 0
                if unlink(blob) == 0 {
                    removedBlobs += 1
                    bytes += size
                }
            }
            return (removedLayers, removedBlobs, bytes)
        }
    }

    /// The layer directories the store's instances use, from their `layers` lists.
    func layersInUse() -> Set<String> {
        var used = Set<String>()
        for id in instanceIDs() {
            guard let bytes = try? FileSystem.read(paths.instanceLayers(id), limit: 1 << 20) else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") { used.insert(String(line)) }
        }
        return used
    }

    /// The hex digests of every stored blob an image on record uses: its manifest, config and layers.
    private func referencedBlobs(_ records: [ImageRecord]) -> Set<String> {
        var live = Set<String>()
        for record in records {
            guard let digest = try? Digest(parsing: record.manifestDigest) else { continue }
            live.insert(digest.hex)
            guard let bytes = try? FileSystem.read(blobs.path(of: digest)),
                let manifest = try? JSONDecoder().decode(Manifest.self, from: Data(bytes))
            else { continue }
            for descriptor in [manifest.config] + manifest.layers {
                if let blob = try? Digest(parsing: descriptor.digest) { live.insert(blob.hex) }
            }
        }
        return live
    }
}
