/// The OCI image-spec types faasbox reads, with the spec's field names. Unknown fields are ignored.

public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let ociLayerNondistributableTar = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    public static let ociLayerNondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    public static let ociLayerNondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerLayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    static let indexes: Set<String> = [ociIndex, dockerManifestList]
    static let manifests: Set<String> = [ociManifest, dockerManifest]
    static let configs: Set<String> = [ociConfig, dockerConfig]
    static let layers: Set<String> = [
        ociLayerTar, ociLayerGzip, ociLayerZstd, ociLayerNondistributableTar, ociLayerNondistributableGzip,
        ociLayerNondistributableZstd, dockerLayerGzip, dockerLayerForeignGzip,
    ]
}

public struct Platform: Codable, Sendable, Hashable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?
    public var osVersion: String?
    public var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    /// The only platform faasbox runs.
    public static let linuxAMD64 = Platform(architecture: "amd64", os: "linux")

    public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }
}

public struct Descriptor: Codable, Sendable, Hashable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var urls: [String]?
    public var annotations: [String: String]?
    public var platform: Platform?

    public init(mediaType: String, digest: String, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    static let refNameAnnotation = "org.opencontainers.image.ref.name"
}

public struct Index: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
}

public struct Manifest: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
}

/// The image configuration (`config` blob), with the runtime part faasbox honours.
public struct ImageConfig: Codable, Sendable {
    public struct RootFS: Codable, Sendable {
        public var type: String
        public var diffIDs: [String]
        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    public struct Runtime: Codable, Sendable, Equatable {
        public var user: String?
        public var exposedPorts: [String: EmptyObject]?
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var workingDir: String?
        public var labels: [String: String]?
        public var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User"
            case exposedPorts = "ExposedPorts"
            case env = "Env"
            case entrypoint = "Entrypoint"
            case cmd = "Cmd"
            case workingDir = "WorkingDir"
            case labels = "Labels"
            case stopSignal = "StopSignal"
        }

        public init() {}
    }

    public struct EmptyObject: Codable, Sendable, Equatable {}

    public var architecture: String
    public var os: String
    public var variant: String?
    public var config: Runtime?
    public var rootfs: RootFS
}
