/// Bounds on what one image may unpack to, against decompression bombs and hostile archives.
public struct UnpackLimits: Sendable, Equatable {
    /// Total uncompressed bytes over all layers of one image.
    public var maxTotalBytes: Int64 = 16 << 30
    /// Entries over all layers of one image.
    public var maxEntries: Int = 2_000_000
    /// Length of one entry's path.
    public var maxPathLength: Int = 4096
    /// Uncompressed bytes per compressed byte of one layer, enforced once a layer is past `ratioGrace`.
    public var maxCompressionRatio: Int64 = 200
    public var ratioGrace: Int64 = 64 << 20
    /// Size of index.json, manifests and configs.
    public var maxMetadataBytes: Int = 4 << 20

    public init() {}
}
