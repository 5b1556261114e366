/// Where the store keeps what, named once: every path under the store's root is built here.
///
/// ```
/// blobs/<alg>/<hex>             verified blobs (manifests, configs, compressed layers)
/// layers/<alg>/<hex>            unpacked layers, by diff_id; layers/.tmp-<pid>-<n> while one is unpacked
/// images/<alg>-<hex>.json       one record per image pulled
/// images/sources/<key>          a source's identity → the manifest digest pulled from it
/// uploads/<alg>-<hex>.tar      an archive uploaded to the service, by its manifest digest; .tmp-<pid>-<n> while it arrives
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
    var uploads: String { "\(root)/uploads" }
    var lock: String { "\(root)/store.lock" }

    /// The directories a store has from its start, with their modes. Image files are the owner's only; the
    /// root and the instances directory may be passed through (0711, not listed) so that an instance's rootfs
    /// path is reachable from a user namespace, whose root is not the owner.
    var directories: [(path: String, mode: mode_t)] {
        [
            (blobs, 0o700), (blob(algorithm: .sha256), 0o700), (layers, 0o700), (layers(algorithm: .sha256), 0o700),
            (layers(algorithm: .sha512), 0o700), (records, 0o700), (sources, 0o700), (uploads, 0o700), (instances, 0o711),
        ]
    }

    func blob(algorithm: Digest.Algorithm) -> String { "\(blobs)/\(algorithm.rawValue)" }
    func blob(_ digest: Digest) -> String { "\(blob(algorithm: digest.algorithm))/\(digest.hex)" }
    func layers(algorithm: Digest.Algorithm) -> String { "\(layers)/\(algorithm.rawValue)" }
    func layer(_ diffID: Digest) -> String { "\(layers(algorithm: diffID.algorithm))/\(diffID.hex)" }
    /// A new directory name to unpack a layer into, renamed to `layer(_:)` once complete.
    func temporaryLayer() -> String { "\(layers)/.tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }
    func record(manifestDigest: String) -> String { "\(records)/\(manifestDigest.replacingOccurrences(of: ":", with: "-")).json" }
    func source(key: String) -> String { "\(sources)/" + Hasher.digest(of: Array(key.utf8), .sha256).hex.prefix(32) }
    func upload(manifestDigest: String) -> String { "\(uploads)/\(manifestDigest.replacingOccurrences(of: ":", with: "-")).tar" }
    func temporaryUpload() -> String { "\(uploads)/.tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }
    func instance(_ id: String) -> String { "\(instances)/\(id)" }
    /// The list of layer directories an instance's rootfs uses (one path per line).
    func instanceLayers(_ id: String) -> String { "\(instance(id))/layers" }
}

#if canImport(Glibc)
    import Glibc
#endif
