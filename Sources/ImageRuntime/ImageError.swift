import SystemSupport

/// Everything that can be wrong with an image or the store; each case names the blob, file or entry.
public enum ImageError: Error, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case notAnImageLayout(path: String, reason: String)
    case malformed(what: String, reason: String)
    case invalidDigest(String)
    case unsupportedDigestAlgorithm(String)
    case blobMissing(digest: String)
    case sizeMismatch(blob: String, expected: Int64, actual: Int64)
    case digestMismatch(blob: String, expected: String, actual: String)
    case diffIDMismatch(layer: String, expected: String, actual: String)
    case layerCountMismatch(layers: Int, diffIDs: Int)
    case unsupportedMediaType(String, digest: String)
    case noMatchingPlatform(wanted: String, available: [String])
    case tagNotFound(String, available: [String])
    case entryEscapesRoot(String)
    case unsafeEntry(String, reason: String)
    case hardlinkTargetMissing(entry: String, target: String)
    /// A layer of an image is no longer in the store (`gc` removed it after an `rmi`): pull the image again.
    case layerMissing(diffID: String)
    case limitExceeded(String)
    case corruptArchive(what: String, reason: String)
    case system(SystemCallError)

    public var description: String {
        switch self {
        case .notFound(let path): return "image not found: \(path)"
        case .notAnImageLayout(let path, let reason):
            return "\(path) is not an OCI image layout (\(reason)); build one with `skopeo copy … oci-archive:FILE` or `umoci`"
        case .malformed(let what, let reason): return "malformed \(what): \(reason)"
        case .invalidDigest(let d): return "invalid digest \"\(d)\""
        case .unsupportedDigestAlgorithm(let d): return "unsupported digest algorithm in \(d) (sha256 and sha512 are supported)"
        case .layerMissing(let diffID):
            return "layer \(diffID) is no longer in the store (removed by gc after rmi); pull the image again"
        case .blobMissing(let digest): return "blob \(digest) is referenced but not present in the image"
        case .sizeMismatch(let blob, let expected, let actual):
            return "blob \(blob): size \(actual) does not match the descriptor's \(expected)"
        case .digestMismatch(let blob, let expected, let actual):
            return "blob \(blob): content digest \(actual) does not match \(expected)"
        case .diffIDMismatch(let layer, let expected, let actual):
            return "layer \(layer): uncompressed digest \(actual) does not match diff_id \(expected)"
        case .layerCountMismatch(let layers, let diffIDs):
            return "manifest has \(layers) layers but the config lists \(diffIDs) diff_ids"
        case .unsupportedMediaType(let type, let digest): return "unsupported media type \(type) for \(digest)"
        case .noMatchingPlatform(let wanted, let available):
            return "no manifest for \(wanted); the image has: \(available.isEmpty ? "none" : available.joined(separator: ", "))"
        case .tagNotFound(let tag, let available):
            return "no image tagged \"\(tag)\"; tags present: \(available.isEmpty ? "none" : available.joined(separator: ", "))"
        case .entryEscapesRoot(let entry): return "layer entry \"\(entry)\" would land outside the root filesystem"
        case .unsafeEntry(let entry, let reason): return "layer entry \"\(entry)\" refused: \(reason)"
        case .hardlinkTargetMissing(let entry, let target):
            return "layer entry \"\(entry)\" is a hardlink to \"\(target)\", which is not in the layer"
        case .limitExceeded(let what): return "image exceeds a limit: \(what)"
        case .corruptArchive(let what, let reason): return "corrupt or truncated \(what): \(reason)"
        case .system(let error): return error.description
        }
    }
}
