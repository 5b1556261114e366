import Foundation

/// `docker save` archives (Docker's `manifest.json` form, without index.json): their entries are turned into an
/// OCI manifest and index in the blob store, so the rest of the pull reads them like any OCI layout.
enum DockerArchive {
    struct Entry: Decodable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    static func synthesizeIndex(
        _ manifestJSON: [UInt8], blobs: [String: (digest: Digest, size: Int64)],
        store: BlobDirectory, archive: String
    ) throws(ImageError) -> [UInt8] {
        let entries: [Entry]
        do { entries = try JSONDecoder().decode([Entry].self, from: Data(manifestJSON)) } catch {
            throw .malformed(what: "manifest.json of \(archive)", reason: "\(error)")
        }
        if entries.isEmpty { throw .notAnImageLayout(path: archive, reason: "manifest.json lists no image") }
        var descriptors: [Descriptor] = []
        for entry in entries {
            func blob(_ name: String) throws(ImageError) -> (digest: Digest, size: Int64) {
                guard let found = blobs[name] ?? blobs[name.hasPrefix("./") ? String(name.dropFirst(2)) : "./\(name)"] else {
                    throw .malformed(what: "manifest.json of \(archive)", reason: "it names \(name), which the archive lacks")
                }
                return found
            }
            let config = try blob(entry.Config)
            let layers = try entry.Layers.map { name throws(ImageError) in
                let layer = try blob(name)
                return Descriptor(mediaType: MediaType.ociLayerTar, digest: layer.digest.description, size: layer.size)
            }
            let manifest = Manifest(
                schemaVersion: 2, mediaType: MediaType.ociManifest,
                config: Descriptor(mediaType: MediaType.dockerConfig, digest: config.digest.description, size: config.size),
                layers: layers)
            let bytes: [UInt8]
            do { bytes = [UInt8](try JSONEncoder().encode(manifest)) } catch {
                throw .malformed(what: "manifest of \(archive)", reason: "\(error)")
            }
            let digest = try store.storeBlob(bytes: bytes)
            let tags = (entry.RepoTags ?? []).isEmpty ? [nil] : (entry.RepoTags ?? []).map { Optional($0) }
            for tag in tags {
                // "name:tag" is selectable as PATH:tag (the part after the last colon) and by its full name.
                var annotations: [String: String]?
                if let tag {
                    annotations = [Descriptor.refNameAnnotation: String(tag.split(separator: ":").last ?? Substring(tag))]
                }
                descriptors.append(
                    Descriptor(
                        mediaType: MediaType.ociManifest, digest: digest.description,
                        size: Int64(bytes.count), annotations: annotations))
            }
        }
        do {
            return [UInt8](
                try JSONEncoder().encode(Index(schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: descriptors)))
        } catch {
            throw .malformed(what: "index of \(archive)", reason: "\(error)")
        }
    }
}
