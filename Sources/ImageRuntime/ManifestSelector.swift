import Foundation

/// Walks index.json and nested indexes to the linux/amd64 manifest (optionally the one with a tag).
struct ManifestSelector {
    let layout: ImageLayout
    let limits: UnpackLimits

    func select(tag: String?) throws(ImageError) -> Descriptor {
        var candidates = layout.index.manifests
        if let tag {
            let tags = candidates.compactMap { $0.annotations?[Descriptor.refNameAnnotation] }
            candidates = candidates.filter { $0.annotations?[Descriptor.refNameAnnotation] == tag }
            if candidates.isEmpty { throw .tagNotFound(tag, available: tags) }
        }
        var seen: [String] = []
        if let found = try search(candidates, depth: 0, seen: &seen) { return found }
        throw .noMatchingPlatform(wanted: Platform.linuxAMD64.description, available: seen)
    }

    private func search(_ descriptors: [Descriptor], depth: Int, seen: inout [String]) throws(ImageError) -> Descriptor? {
        if depth > 8 { throw .malformed(what: "index", reason: "indexes nested deeper than 8") }
        for descriptor in descriptors where MediaType.manifests.contains(descriptor.mediaType) {
            guard let platform = descriptor.platform else { return descriptor }
            seen.append(platform.description)
            if Self.runs(platform) { return descriptor }
        }
        for descriptor in descriptors where MediaType.indexes.contains(descriptor.mediaType) {
            let bytes = try layout.readBlob(descriptor, limits: limits)
            let nested: Index
            do { nested = try JSONDecoder().decode(Index.self, from: Data(bytes)) } catch {
                throw .malformed(what: "index \(descriptor.digest)", reason: "\(error)")
            }
            if let found = try search(nested.manifests, depth: depth + 1, seen: &seen) { return found }
        }
        return nil
    }

    /// linux/amd64, any baseline variant, no OS features required.
    static func runs(_ platform: Platform) -> Bool {
        platform.os == "linux" && platform.architecture == "amd64"
            && [nil, "v1", "v2", "v3"].contains(platform.variant) && (platform.osFeatures ?? []).isEmpty
    }
}
