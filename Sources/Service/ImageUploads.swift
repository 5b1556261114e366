import Executor
import Foundation
import Hummingbird
import ImageRuntime
import NIOCore
import SystemSupport

/// `POST /images`: an image archive as the body (an OCI archive or a docker-archive), streamed into a file of
/// the store as it arrives, then verified and unpacked like any archive; the answer names it by its manifest
/// digest, which a deploy then gives as its image (`"image": "sha256:…"`). A client on another machine has no
/// other way to give the service an image: host paths are only for the operator's image roots.
enum ImageUploads {
    /// The largest archive taken.
    static let maxBytes: Int64 = 8 << 30
    /// Body bytes gathered before one write.
    static let writeChunk = 4 << 20

    struct Uploaded: Codable, Sendable {
        let digest: String
        let layers: Int
        let bytes: Int64
    }

    static func receive(_ request: Request, store: ImageStore) async throws -> Response {
        let (path, file): (String, OwnedFileDescriptor)
        do { (path, file) = try store.newUploadFile() } catch {
            throw ServiceError.invalidRequest("cannot store the upload: \(error)")
        }
        var total: Int64 = 0
        do {
            var pending = ByteBuffer()
            for try await var chunk in request.body {
                total += Int64(chunk.readableBytes)
                if total > maxBytes {
                    throw ServiceError.invalidRequest("the archive is over \(maxBytes >> 30) GiB, the most an upload may be")
                }
                pending.writeBuffer(&chunk)
                if pending.readableBytes >= writeChunk {
                    try await write(pending, to: file, path: path)
                    pending.clear()
                }
            }
            if pending.readableBytes > 0 { try await write(pending, to: file, path: path) }
            file.close()
        } catch {
            file.close()
            unlink(path)
            throw error
        }
        if total == 0 { unlink(path); throw ServiceError.invalidRequest("the body is empty: send an image archive") }
        let image: PulledImage
        do { image = try await store.importUpload(path) } catch {
            throw ServiceError.invalidSpec(FunctionSpec.Invalid(field: "image", reason: error.description))
        }
        return ServiceAPI.json(Uploaded(digest: image.manifestDigest, layers: image.layers.count, bytes: total), status: .created)
    }

    private static func write(_ buffer: ByteBuffer, to file: OwnedFileDescriptor, path: String) async throws {
        let bytes = Array(buffer.readableBytesView)
        try await runBlocking { () throws(SystemCallError) in
            let failure = bytes.withUnsafeBytes { buffer -> SystemCallError? in
                do throws(SystemCallError) { try FileSystem.writeAll(file.rawValue, buffer, path: path) } catch { return error }
                return nil
            }
            if let failure { throw failure }
        }
    }
}
