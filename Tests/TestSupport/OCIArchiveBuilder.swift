import CArchive
import Crypto
import Foundation

/// One entry of a test layer.
public struct TestEntry: Sendable {
    public enum Kind: Sendable {
        case file([UInt8]), directory, symlink(String), hardlink(String), fifo, charDevice(major: Int, minor: Int)
    }
    public var path: String
    public var kind: Kind
    public var mode: UInt32
    public var uid: Int64 = 0
    public var gid: Int64 = 0
    public var xattrs: [String: String] = [:]

    public static func file(_ path: String, _ text: String, mode: UInt32 = 0o644) -> TestEntry {
        TestEntry(path: path, kind: .file(Array(text.utf8)), mode: mode)
    }
    public static func file(_ path: String, bytes: [UInt8], mode: UInt32 = 0o755) -> TestEntry {
        TestEntry(path: path, kind: .file(bytes), mode: mode)
    }
    public static func charDevice(_ path: String, major: Int, minor: Int) -> TestEntry {
        TestEntry(path: path, kind: .charDevice(major: major, minor: minor), mode: 0o666)
    }
    public static func fifo(_ path: String) -> TestEntry { TestEntry(path: path, kind: .fifo, mode: 0o644) }
    public static func dir(_ path: String, mode: UInt32 = 0o755) -> TestEntry {
        TestEntry(path: path, kind: .directory, mode: mode)
    }
    public static func symlink(_ path: String, to target: String) -> TestEntry {
        TestEntry(path: path, kind: .symlink(target), mode: 0o777)
    }
    public static func hardlink(_ path: String, to target: String) -> TestEntry {
        TestEntry(path: path, kind: .hardlink(target), mode: 0o644)
    }
}

/// Writes OCI image layouts (oci-archive tarballs) from entries in code, for tests that need exact, hostile
/// or broken images. Digests are computed, unless a test asks for them to be wrong.
public struct OCIArchiveBuilder {
    public enum Compression { case gzip, none }
    public struct Layer {
        public var entries: [TestEntry]
        public var compression: Compression = .gzip
        public init(_ entries: [TestEntry], compression: Compression = .gzip) {
            self.entries = entries
            self.compression = compression
        }
    }

    public var layers: [Layer]
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var env: [String] = ["PATH=/bin"]
    public var workingDir: String?
    /// The config's `User` ("0", "root", "1000:1000"…).
    public var user: String?
    /// Replaces the named diff_id (index) with a wrong one.
    public var corruptDiffID: Int?
    /// Flips a byte of this layer blob after its digest was taken.
    public var corruptLayerBlob: Int?
    /// Cuts this layer blob to half its length (keeping the descriptor's digest and size).
    public var truncateLayerBlob: Int?

    /// The real manifest's platform in the index ("os/arch"), if it should carry one.
    public var manifestPlatform: String?
    /// Put the manifest in a nested index rather than directly in index.json.
    public var nestedIndex = false
    /// Descriptors listed before the real one: ("os/arch", mediaType) pointing at blobs that do not exist.
    public var decoys: [(platform: String, mediaType: String)] = []

    public init(layers: [Layer]) { self.layers = layers }

    /// A rootfs layer holding the host's busybox-static as /bin/busybox and /bin/sh.
    public static func busyboxEntries() throws -> [TestEntry] {
        let busybox = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/bin/busybox")))
        return [
            .dir("bin"), .file("bin/busybox", bytes: busybox), .symlink("bin/sh", to: "busybox"),
            .symlink("bin/sleep", to: "busybox"), .symlink("bin/nc", to: "busybox"), .dir("tmp", mode: 0o1777),
        ]
    }

    /// Writes the archive to `path`.
    public func write(to path: String) throws {
        var blobs: [(String, [UInt8])] = []
        var layerDescriptors: [[String: Any]] = []
        var diffIDs: [String] = []
        for (i, layer) in layers.enumerated() {
            let tar = try Self.tar(layer.entries)
            var blob = layer.compression == .gzip ? try Self.gzip(tar) : tar
            diffIDs.append(i == corruptDiffID ? "sha256:" + String(repeating: "0", count: 64) : Self.digest(tar))
            let digest = Self.digest(blob)
            let size = blob.count
            if i == corruptLayerBlob { blob[blob.count / 2] ^= 0xff }
            if i == truncateLayerBlob { blob = Array(blob[0..<(blob.count / 2)]) }
            blobs.append((digest, blob))
            layerDescriptors.append([
                "mediaType": layer.compression == .gzip
                    ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar",
                "digest": digest, "size": size,
            ])
        }
        var runtime: [String: Any] = ["Env": env]
        if let entrypoint { runtime["Entrypoint"] = entrypoint }
        if let cmd { runtime["Cmd"] = cmd }
        if let workingDir { runtime["WorkingDir"] = workingDir }
        if let user { runtime["User"] = user }
        let config = try Self.json([
            "architecture": "amd64", "os": "linux", "config": runtime,
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
        ])
        blobs.append((Self.digest(config), config))
        let manifest = try Self.json([
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": [
                "mediaType": "application/vnd.oci.image.config.v1+json", "digest": Self.digest(config), "size": config.count,
            ],
            "layers": layerDescriptors,
        ])
        blobs.append((Self.digest(manifest), manifest))
        func platform(_ text: String) -> [String: String] {
            let parts = text.split(separator: "/").map(String.init)
            var p = ["os": parts[0], "architecture": parts[1]]
            if parts.count > 2 { p["variant"] = parts[2] }
            return p
        }
        var real: [String: Any] = [
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Self.digest(manifest), "size": manifest.count,
        ]
        if let manifestPlatform { real["platform"] = platform(manifestPlatform) }
        var listed: [[String: Any]] = decoys.map { decoy in
            [
                "mediaType": decoy.mediaType, "digest": "sha256:" + String(repeating: "a", count: 64), "size": 10,
                "platform": platform(decoy.platform),
            ]
        }
        listed.append(real)
        var top: [[String: Any]] = listed
        if nestedIndex {
            let nested = try Self.json([
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed,
            ])
            blobs.append((Self.digest(nested), nested))
            top = [["mediaType": "application/vnd.oci.image.index.v1+json", "digest": Self.digest(nested), "size": nested.count]]
        }
        top[top.count - 1]["annotations"] = ["org.opencontainers.image.ref.name": "latest"]
        let index = try Self.json(["schemaVersion": 2, "manifests": top])
        var outer: [TestEntry] = [.file("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"), .dir("blobs"), .dir("blobs/sha256")]
        for (digest, bytes) in blobs {
            outer.append(.file("blobs/sha256/" + digest.dropFirst(7), bytes: bytes, mode: 0o644))
        }
        outer.append(.file("index.json", bytes: index, mode: 0o644))
        try Data(Self.tar(outer)).write(to: URL(fileURLWithPath: path))
    }

    public static func digest(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    static func json(_ object: Any) throws -> [UInt8] {
        [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    /// A tar (pax) of `entries`, written with libarchive.
    public static func tar(_ entries: [TestEntry]) throws -> [UInt8] {
        let a = archive_write_new()!
        defer { archive_write_free(a) }
        archive_write_set_format_pax_restricted(a)
        return try writeAll(a) { a in
            for e in entries {
                let entry = archive_entry_new()!
                defer { archive_entry_free(entry) }
                archive_entry_set_pathname(entry, e.path)
                archive_entry_set_perm(entry, mode_t(e.mode))
                archive_entry_set_uid(entry, e.uid)
                archive_entry_set_gid(entry, e.gid)
                archive_entry_set_mtime(entry, 1_700_000_000, 0)
                var data: [UInt8] = []
                switch e.kind {
                case .file(let bytes):
                    archive_entry_set_filetype(entry, 0o100000)
                    archive_entry_set_size(entry, Int64(bytes.count))
                    data = bytes
                case .directory: archive_entry_set_filetype(entry, 0o040000)
                case .symlink(let target):
                    archive_entry_set_filetype(entry, 0o120000)
                    archive_entry_set_symlink(entry, target)
                case .hardlink(let target):
                    archive_entry_set_filetype(entry, 0o100000)
                    archive_entry_set_hardlink(entry, target)
                case .fifo: archive_entry_set_filetype(entry, 0o010000)
                case .charDevice(let major, let minor):
                    archive_entry_set_filetype(entry, 0o020000)
                    archive_entry_set_rdevmajor(entry, dev_t(major))
                    archive_entry_set_rdevminor(entry, dev_t(minor))
                }
                for (name, value) in e.xattrs {
                    _ = value.withCString { archive_entry_xattr_add_entry(entry, name, $0, strlen($0)) }
                }
                guard archive_write_header(a, entry) == ARCHIVE_OK else {
                    throw BuildError.libarchive(String(cString: archive_error_string(a)))
                }
                if !data.isEmpty { _ = data.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) } }
            }
        }
    }

    public static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let a = archive_write_new()!
        defer { archive_write_free(a) }
        archive_write_set_format_raw(a)
        archive_write_add_filter_gzip(a)
        return try writeAll(a) { a in
            let entry = archive_entry_new()!
            defer { archive_entry_free(entry) }
            archive_entry_set_filetype(entry, 0o100000)
            archive_entry_set_pathname(entry, "data")
            archive_write_header(a, entry)
            _ = bytes.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) }
        }
    }

    private static func writeAll(_ a: OpaquePointer, _ body: (OpaquePointer) throws -> Void) throws -> [UInt8] {
        let capacity = 256 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var used = 0
        archive_write_set_bytes_in_last_block(a, 1)
        guard archive_write_open_memory(a, buffer, capacity, &used) == ARCHIVE_OK else { throw BuildError.libarchive("open") }
        try body(a)
        archive_write_close(a)
        return Array(UnsafeRawBufferPointer(start: buffer, count: used))
    }

    public enum BuildError: Error { case libarchive(String) }
}
