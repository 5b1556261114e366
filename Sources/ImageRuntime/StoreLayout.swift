/// Where the store keeps what, named once: every path under the store's root is built here.
///
/// ```
/// blobs/<alg>/<hex>             verified blobs (manifests, configs, compressed layers)
/// layers/<alg>/<hex>            unpacked layers, by diff_id; layers/.tmp-<pid>-<n> while one is unpacked
/// images/<alg>-<hex>.json       one record per image pulled
/// images/sources/<key>          a source's identity → the manifest digest pulled from it
/// instances/<id>/               an instance's rootfs, upper and work directories, and `layers`: what it uses
/// store.lock                    shared while layers are unpacked or mounted, exclusive while gc removes them
/// ```
struct StoreLayout: Sendable {
    let root: String

    var blobs: String { "\(root)/blobs" }
    var layers: String { "\(root)/layers" }
    var records: String { "\(root)/images" }
    var sources: String { "\(root)/images/sources" }
    var instances: String { "\(root)/instances" }
    var lock: String { "\(root)/store.lock" }

    /// The directories a store has from its start.
    var directories: [String] {
        [blob(algorithm: .sha256), layers(algorithm: .sha256), layers(algorithm: .sha512), instances, sources]
    }

    func blob(algorithm: Digest.Algorithm) -> String { "\(blobs)/\(algorithm.rawValue)" }
    func blob(_ digest: Digest) -> String { "\(blob(algorithm: digest.algorithm))/\(digest.hex)" }
    func layers(algorithm: Digest.Algorithm) -> String { "\(layers)/\(algorithm.rawValue)" }
    func layer(_ diffID: Digest) -> String { "\(layers(algorithm: diffID.algorithm))/\(diffID.hex)" }
    /// A new directory name to unpack a layer into, renamed to `layer(_:)` once complete.
    func temporaryLayer() -> String { "\(layers)/.tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }
    func record(manifestDigest: String) -> String { "\(records)/\(manifestDigest.replacingOccurrences(of: ":", with: "-")).json" }
    func source(key: String) -> String { "\(sources)/" + Hasher.digest(of: Array(key.utf8), .sha256).hex.prefix(32) }
    func instance(_ id: String) -> String { "\(instances)/\(id)" }
    /// The list of layer directories an instance's rootfs uses (one path per line).
    func instanceLayers(_ id: String) -> String { "\(instance(id))/layers" }
}

#if canImport(Glibc)
    import Glibc
#endif
