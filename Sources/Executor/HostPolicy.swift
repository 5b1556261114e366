import Bootstrap
import Foundation
import ImageRuntime
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What the operator of `faasbox serve` lets callers take from the host: which directories may be mounted
/// into functions, whether a function may share the host's network, which image archives on the host may be
/// named. A caller asks; this decides. The default gives nothing away: no mounts, no host network, no host
/// paths (only images uploaded to the service, `sha256:…`).
public struct HostPolicy: Sendable {
    /// Directories whose subtrees may be mounted (`serve --allow-mount DIR`), as real paths.
    public var mountRoots: [String] = []
    /// `serve --allow-host-network`.
    public var hostNetwork = false
    /// Directories whose archives may be named as images (`serve --image-root DIR`), as real paths.
    public var imageRoots: [String] = []

    public init(mountRoots: [String] = [], hostNetwork: Bool = false, imageRoots: [String] = []) {
        self.mountRoots = mountRoots.map(Self.realPath)
        self.hostNetwork = hostNetwork
        self.imageRoots = imageRoots.map(Self.realPath)
    }

    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The spec as the host lets it run: each mount's source resolved inside an allowed root (never through a
    /// link out of it), the image an uploaded one or an archive under an image root; or the field refused.
    func admit(_ validated: FunctionSpec.Validated, store: ImageStore) throws(FunctionSpec.Invalid) -> FunctionSpec.Validated {
        var config = validated.config
        if config.hostNetwork && !hostNetwork {
            throw FunctionSpec.Invalid(
                field: "network",
                reason: "\"host\" is not allowed on this server (the operator allows it with serve --allow-host-network)")
        }
        for (index, mount) in config.mounts.enumerated() {
            (config.mounts[index].source, config.mounts[index].within) = try resolveMount(
                mount.source, field: "mounts[\(index)].source")
        }
        let image = try resolveImage(validated.image, store: store)
        return validated.with(image: image, config: config)
    }

    /// The mount's source as a real path, and the allowed root it lies beneath (which every cold start checks
    /// again, so a link swapped in later cannot lead out of it either).
    func resolveMount(_ source: String, field: String) throws(FunctionSpec.Invalid) -> (String, String) {
        let allowed =
            mountRoots.isEmpty ? "none are allowed (serve --allow-mount DIR allows one)" : mountRoots.joined(separator: ", ")
        for root in mountRoots where source == root || source.hasPrefix(root == "/" ? "/" : root + "/") {
            do {
                let directory = try OwnedFileDescriptor.open(source, beneath: root, O_PATH_FLAG | O_DIRECTORY)
                return (try directory.resolvedPath(), root)
            } catch {
                let why =
                    error.errno == .improperLink
                    ? "leads out of the allowed directory \(root) (through a symbolic link or ..)"
                    : error.errno == .notDirectory ? "is not a directory" : "cannot be opened: \(error.errno)"
                throw FunctionSpec.Invalid(field: field, reason: "\(source) \(why)")
            }
        }
        throw FunctionSpec.Invalid(
            field: field, reason: "\(source) is not under a directory the operator allows to mount: \(allowed)")
    }

    func resolveImage(_ image: String, store: ImageStore) throws(FunctionSpec.Invalid) -> String {
        if image.hasPrefix("sha256:") {
            guard let path = store.uploadedArchive(image) else {
                throw FunctionSpec.Invalid(
                    field: "image", reason: "no uploaded image has the digest \(image) (POST /images uploads one)")
            }
            return path
        }
        let (path, tag) = ImageStore.split(image)
        let real = Self.realPath(path)
        for root in imageRoots where real.hasPrefix(root == "/" ? "/" : root + "/") {
            return tag.map { "\(real):\($0)" } ?? real
        }
        let roots = imageRoots.isEmpty ? "none (serve --image-root DIR allows one)" : imageRoots.joined(separator: ", ")
        throw FunctionSpec.Invalid(
            field: "image",
            reason:
                "\(image) is not under an image root of this server: \(roots); upload the archive instead (faasbox deploy uploads a local file)"
        )
    }
}
