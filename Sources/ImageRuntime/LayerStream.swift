import SystemSupport

/// A layer blob as a stream of tar entries: file → (hash compressed) → decompress → (hash, count, bound) → tar.
final class LayerStream {
    let compressed: FileSource
    private let decompressor: ArchiveReader
    private let uncompressed: DecompressedSource
    private let pipeline: PipelinedSource
    let tar: ArchiveReader

    init(
        file: OwnedFileDescriptor, label: String, verifyCompressed algorithm: Digest.Algorithm?,
        diffIDAlgorithm: Digest.Algorithm,
        limits: UnpackLimits, bytesBudget: Int64
    ) throws(ImageError) {
        compressed = FileSource(file: file, label: label, hashing: algorithm)
        decompressor = try ArchiveReader(format: .raw, source: compressed, what: "layer \(label)")
        guard try decompressor.next() != nil else { throw .corruptArchive(what: "layer \(label)", reason: "empty stream") }
        uncompressed = DecompressedSource(
            reader: decompressor, compressed: compressed, algorithm: diffIDAlgorithm, limits: limits,
            budget: bytesBudget, label: label)
        let compressed = self.compressed
        pipeline = PipelinedSource(uncompressed) { () throws(ImageError) in
            // Whatever follows the compressed stream is part of the blob and its digest.
            while try !compressed.read().isEmpty {}
        }
        do {
            tar = try ArchiveReader(format: .tar, source: pipeline, what: "layer \(label)")
        } catch {
            // deinit does not run for a half-made object: end the decompressing thread here.
            pipeline.stop()
            throw error
        }
    }

    deinit { stop() }

    /// Ends the decompressing thread, whether the layer was read to its end or abandoned on an error (the
    /// descriptor it reads is the stream's own, closed when the last reader lets go). Idempotent.
    func stop() { pipeline.stop() }

    /// Reads what is left after the tar end marker, so the digests cover the whole blob.
    func finish() throws(ImageError) -> (compressed: Digest?, compressedSize: Int64, diffID: Digest, size: Int64) {
        try pipeline.drain()
        return (compressed.hasher?.finalize(), compressed.bytesRead, uncompressed.hasher.finalize(), uncompressed.count)
    }
}

/// Feeds a tar reader from a decompressing reader, hashing and bounding the uncompressed bytes.
private final class DecompressedSource: ReadSource {
    let reader: ArchiveReader
    let compressed: FileSource
    var hasher: Hasher
    var count: Int64 = 0
    let limits: UnpackLimits
    let budget: Int64
    let label: String
    private var atEnd = false

    init(
        reader: ArchiveReader, compressed: FileSource, algorithm: Digest.Algorithm, limits: UnpackLimits,
        budget: Int64, label: String
    ) {
        self.reader = reader
        self.compressed = compressed
        self.hasher = Hasher(algorithm)
        self.limits = limits
        self.budget = budget
        self.label = label
    }

    override func read() throws(ImageError) -> UnsafeRawBufferPointer {
        if atEnd { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let (bytes, _) = try reader.readBlock() else {
            atEnd = true
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        hasher.update(bytes)
        count += Int64(bytes.count)
        if count > budget {
            throw .limitExceeded("layer \(label) unpacks past the image's total size limit of \(limits.maxTotalBytes) bytes")
        }
        if count > limits.ratioGrace && count > limits.maxCompressionRatio * max(compressed.bytesRead, 1) {
            throw .limitExceeded("layer \(label) decompresses more than \(limits.maxCompressionRatio)× its compressed size")
        }
        return bytes
    }
}
