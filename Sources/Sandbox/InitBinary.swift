import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// faasbox-init, the static pid 1 of every sandbox: found beside the running executable (or at
/// $FAASBOX_INIT), opened once, and exec'd by descriptor, so it need not exist inside any image.
enum InitBinary {
    static let name = "faasbox-init"

    /// An O_PATH descriptor of faasbox-init, or the reason there is none.
    static let descriptor: Result<OwnedFileDescriptor, SandboxError> = locate()

    private static func locate() -> Result<OwnedFileDescriptor, SandboxError> {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["FAASBOX_INIT"] { candidates.append(path) }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent + "/" + name)
        }
        for path in candidates {
            if let file = try? OwnedFileDescriptor.open(path, O_PATH_FLAG) { return .success(file) }
        }
        return .failure(
            .invalidSpec(
                "\(name) was not found (looked at \(candidates.joined(separator: ", "))); "
                    + "it is built beside faasbox by `swift build`, or set FAASBOX_INIT"))
    }
}
