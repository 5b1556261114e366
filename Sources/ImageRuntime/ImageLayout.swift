import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// An OCI image layout made readable: index.json in memory, and a path for every blob. Blobs of an
/// `oci-archive` are copied into the store's blob directory, verified on the way; blobs of a layout
/// directory are read where they are and verified as they are read.
struct ImageLayout {
    let source: String
    let index: Index
    let blobDirectory: String
    /// Whether the blobs under `blobDirectory` were verified already (copied into the store).
    let blobsVerified: Bool

    func blobPath(_ digest: Digest) -> String { "\(blobDirectory)/\(digest.algorithm.rawValue)/\(digest.hex)" }

    /// Reads a small blob whole and checks its size and digest.
    func readBlob(_ descriptor: Descriptor, limits: UnpackLimits) throws(ImageError) -> [UInt8] {
        let digest = try Digest(parsing: descriptor.digest)
        if descriptor.size < 0 || descriptor.size > Int64(limits.maxMetadataBytes) {
            throw .limitExceeded("blob \(descriptor.digest) of \(descriptor.size) bytes is over \(limits.maxMetadataBytes)")
        }
        let bytes: [UInt8]
        do { bytes = try FileSystem.read(blobPath(digest), limit: limits.maxMetadataBytes + 1) } catch {
            if error.errno == .noSuchFileOrDirectory { throw .blobMissing(digest: descriptor.digest) }
            throw .system(error)
        }
        if Int64(bytes.count) != descriptor.size {
            throw .sizeMismatch(blob: descriptor.digest, expected: descriptor.size, actual: Int64(bytes.count))
        }
        let actual = Hasher.digest(of: bytes, digest.algorithm)
        if actual != digest {
            throw .digestMismatch(blob: descriptor.digest, expected: digest.description, actual: actual.description)
        }
        return bytes
    }

    static func open(path: String, store: BlobDirectory, limits: UnpackLimits) throws(ImageError) -> ImageLayout {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { throw .notFound(path: path) }
            throw .system(.current("stat", path: path))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { return try openDirectory(path, limits: limits) }
        return try openArchive(path, store: store, limits: limits)
    }

    private static func openDirectory(_ path: String, limits: UnpackLimits) throws(ImageError) -> ImageLayout {
        let indexBytes: [UInt8]
        do { indexBytes = try FileSystem.read("\(path)/index.json", limit: limits.maxMetadataBytes) } catch {
            throw .notAnImageLayout(path: path, reason: "no index.json")
        }
        if let layout = try? FileSystem.read("\(path)/oci-layout", limit: 4096) { try checkLayoutFile(layout, path: path) }
        let index = try decodeIndex(indexBytes, path: path)
        return ImageLayout(source: path, index: index, blobDirectory: "\(path)/blobs", blobsVerified: false)
    }

    /// Streams an `oci-archive` tarball once: small files kept in memory, blobs copied into the store.
    private static func openArchive(_ path: String, store: BlobDirectory, limits: UnpackLimits) throws(ImageError) -> ImageLayout
    {
        let file: OwnedFileDescriptor
        do { file = try .open(path, O_RDONLY) } catch { throw .system(error) }
        let reader: ArchiveReader
        let source = FileSource(file: file, label: path)
        do { reader = try ArchiveReader(format: .tar, source: source, what: path) } catch {
            throw .notAnImageLayout(path: path, reason: "not a tar archive")
        }
        var indexBytes: [UInt8]?
        var layoutBytes: [UInt8]?
        var dockerManifestBytes: [UInt8]?
        var namedBlobs: [String: (digest: Digest, size: Int64)] = [:]
        var sawEntry = false
        while true {
            let entry: ArchiveEntry?
            do { entry = try reader.next() } catch {
                if !sawEntry { throw .notAnImageLayout(path: path, reason: "not a tar archive") }
                throw error
            }
            guard let entry else { break }
            sawEntry = true
            let name = entry.path.hasPrefix("./") ? String(entry.path.dropFirst(2)) : entry.path
            switch name {
            case "index.json": indexBytes = try reader.readAll(limit: limits.maxMetadataBytes)
            case "oci-layout": layoutBytes = try reader.readAll(limit: 4096)
            case "manifest.json": dockerManifestBytes = try reader.readAll(limit: limits.maxMetadataBytes)
            case "repositories": continue
            default:
                guard entry.kind == .regular else { continue }
                let parts = name.split(separator: "/")
                if parts.count == 3 && parts[0] == "blobs" {
                    let digest = try Digest(parsing: "\(parts[1]):\(parts[2])")
                    try store.storeBlob(digest, from: reader, size: entry.size, archive: path)
                } else {
                    // docker save names files by id, not digest: store them by the digest of what they hold.
                    namedBlobs[name] = (try store.storeBlob(hashing: reader, archive: path, name: name), entry.size)
                }
            }
        }
        if indexBytes == nil, let dockerManifestBytes {
            indexBytes = try DockerArchive.synthesizeIndex(dockerManifestBytes, blobs: namedBlobs, store: store, archive: path)
        }
        guard let indexBytes else { throw .notAnImageLayout(path: path, reason: "no index.json or manifest.json in the archive") }
        if let layoutBytes { try checkLayoutFile(layoutBytes, path: path) }
        let index = try decodeIndex(indexBytes, path: path)
        return ImageLayout(source: path, index: index, blobDirectory: store.path, blobsVerified: true)
    }

    private static func checkLayoutFile(_ bytes: [UInt8], path: String) throws(ImageError) {
        struct Layout: Decodable { var imageLayoutVersion: String }
        guard let layout = try? JSONDecoder().decode(Layout.self, from: Data(bytes)) else {
            throw .notAnImageLayout(path: path, reason: "oci-layout is not valid JSON")
        }
        if !layout.imageLayoutVersion.hasPrefix("1.") {
            throw .notAnImageLayout(path: path, reason: "unsupported imageLayoutVersion \(layout.imageLayoutVersion)")
        }
    }

    private static func decodeIndex(_ bytes: [UInt8], path: String) throws(ImageError) -> Index {
        do { return try JSONDecoder().decode(Index.self, from: Data(bytes)) } catch {
            throw .malformed(what: "index.json of \(path)", reason: "\(error)")
        }
    }
}

/// The store's verified blob directory (`blobs/<alg>/<hex>`).
struct BlobDirectory {
    let path: String

    /// Where the blob `digest` is kept.
    func path(of digest: Digest) -> String { "\(path)/\(digest.algorithm.rawValue)/\(digest.hex)" }

    /// Stores the current entry under the sha256 of its content, whatever its name, and returns that digest.
    func storeBlob(hashing reader: ArchiveReader, archive: String, name: String) throws(ImageError) -> Digest {
        let (tmp, claim) = try temporaryFile()
        defer { claim.close() }
        var hasher = Hasher(.sha256)
        do throws(ImageError) {
            try copy(from: reader, to: tmp, hasher: &hasher)
            let digest = hasher.finalize()
            try createAlgorithmDirectory(.sha256)
            if rename(tmp, path(of: digest)) != 0 {
                throw ImageError.system(.current("rename", path: "\(archive):\(name)"))
            }
            return digest
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Writes a small blob (a synthesized manifest) and returns its digest.
    func storeBlob(bytes: [UInt8]) throws(ImageError) -> Digest {
        let digest = Hasher.digest(of: bytes, .sha256)
        try createAlgorithmDirectory(.sha256)
        do { try FileSystem.writeAtomically(path(of: digest), bytes) } catch { throw .system(error) }
        return digest
    }

    private func createAlgorithmDirectory(_ algorithm: Digest.Algorithm) throws(ImageError) {
        do { try FileSystem.createDirectory("\(path)/\(algorithm.rawValue)") } catch { throw .system(error) }
    }

    /// A new temporary file and its claim (TemporaryClaim), which the caller holds until it is renamed or removed.
    private func temporaryFile() throws(ImageError) -> (String, OwnedFileDescriptor) {
        let tmp = "\(path)/.tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw .system(.current("open", path: tmp)) }
        close(fd)
        do { return (tmp, try TemporaryClaim.claim(tmp)) } catch {
            unlink(tmp)
            throw .system(error)
        }
    }

    private func copy(from reader: ArchiveReader, to file: String, hasher: inout Hasher) throws(ImageError) {
        let fd = Glibc.open(file, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw .system(.current("open", path: file)) }
        defer { close(fd) }
        while let (bytes, _) = try reader.readBlock() {
            hasher.update(bytes)
            do { try FileSystem.writeAll(fd, bytes, path: file) } catch { throw .system(error) }
        }
    }

    func storeBlob(_ digest: Digest, from reader: ArchiveReader, size: Int64, archive: String) throws(ImageError) {
        let final = "\(path)/\(digest.algorithm.rawValue)/\(digest.hex)"
        var st = stat()
        if stat(final, &st) == 0 && Int64(st.st_size) == size { return }
        try createAlgorithmDirectory(digest.algorithm)
        let (tmp, claim) = try temporaryFile()
        defer { claim.close() }
        var hasher = Hasher(digest.algorithm)
        do throws(ImageError) {
            try copy(from: reader, to: tmp, hasher: &hasher)
            let actual = hasher.finalize()
            if actual != digest {
                throw ImageError.digestMismatch(
                    blob: "\(archive):blobs/\(digest.algorithm)/\(digest.hex)",
                    expected: digest.description, actual: actual.description)
            }
            if rename(tmp, final) != 0 { throw ImageError.system(.current("rename", path: final)) }
        } catch {
            unlink(tmp)
            throw error
        }
    }
}
