import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Archives uploaded to the service (`POST /images`): written to a temporary file in the store as they
/// arrive, verified and unpacked like any archive, then kept under their manifest digest, which names them
/// (`sha256:…`) from then on.
extension ImageStore {
    /// A new file for an upload to be written to; pass it to `importUpload`, or remove it.
    public func newUploadFile() throws(ImageError) -> (path: String, file: OwnedFileDescriptor) {
        let path = paths.temporaryUpload()
        do throws(SystemCallError) {
            // The writer's descriptor is also its claim (TemporaryClaim): held until the upload is imported.
            let file = try OwnedFileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            if Syscall.retrying({ flock(file.rawValue, LOCK_EX | LOCK_NB) }) != 0 { throw .current("flock", path: path) }
            return (path, file)
        } catch {
            throw .system(error)
        }
    }

    /// Pulls the archive written to `temporary` (verifying every digest) and keeps it as the uploaded image of
    /// its manifest digest. On failure the file is removed and nothing is kept.
    public func importUpload(_ temporary: String) async throws(ImageError) -> PulledImage {
        let image: PulledImage
        do { image = try await pull(temporary) } catch {
            unlink(temporary)
            throw error
        }
        let final = paths.upload(manifestDigest: image.manifestDigest)
        if rename(temporary, final) != 0 {
            let error = SystemCallError.current("rename", path: final)
            unlink(temporary)
            throw .system(error)
        }
        // Once more under its own name, so that its record names it and a cold start finds it stored.
        return (try? await pull(final)) ?? image
    }

    /// The archive uploaded with this manifest digest (`sha256:<hex>`), if the store has it.
    public func uploadedArchive(_ digest: String) -> String? {
        guard let parsed = try? Digest(parsing: digest) else { return nil }
        let path = paths.upload(manifestDigest: parsed.description)
        return FileSystem.exists(path) ? path : nil
    }
}
