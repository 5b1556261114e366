import ImageRuntime
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Which program starts the function: the config's command/args, else the image's Entrypoint + Cmd, else
/// `scf_bootstrap` from WorkingDir, /var/user or /.
public enum BootstrapCommand {
    public static func resolve(config: FunctionConfig, image: ImageConfig.Runtime?, rootfs: String, imageName: String)
        throws(BootstrapError) -> (arguments: [String], workingDirectory: String)
    {
        let workingDir = (image?.workingDir).flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        if let command = config.command, !command.isEmpty {
            return (command + (config.arguments ?? image?.cmd ?? []), workingDir)
        }
        let entrypoint = image?.entrypoint ?? []
        let cmd = config.arguments ?? image?.cmd ?? []
        if !(entrypoint + cmd).isEmpty { return (entrypoint + cmd, workingDir) }
        let explicitDir = (image?.workingDir).flatMap { $0.isEmpty ? nil : $0 }
        var candidates = (explicitDir.map { [$0] } ?? []) + SCFContract.bootstrapDirectories
        var seen = Set<String>()
        candidates = candidates.filter { seen.insert($0).inserted }
        for dir in candidates {
            let path = dir == "/" ? "/\(SCFContract.bootstrapName)" : "\(dir)/\(SCFContract.bootstrapName)"
            if isExecutableFile(path, in: rootfs) { return ([path], dir) }
        }
        throw .noBootstrap(image: imageName)
    }

    /// Whether `path` names an executable regular file inside `rootfs`, resolving symlinks within it.
    static func isExecutableFile(_ path: String, in rootfs: String) -> Bool {
        guard let file = try? OwnedFileDescriptor.open(path, inRoot: rootfs, O_PATH_FLAG) else { return false }
        var st = stat()
        return fstat(file.rawValue, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && (st.st_mode & 0o111) != 0
    }
}
