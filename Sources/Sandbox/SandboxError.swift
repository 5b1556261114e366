import SystemSupport

/// Why a sandbox could not be made, or what happened to it.
public enum SandboxError: Error, Sendable, CustomStringConvertible {
    /// A step in the child failed before exec: the step's name and its errno.
    case setupFailed(step: String, errno: Int32)
    case syscall(SystemCallError)
    case cgroup(String)
    case invalidSpec(String)

    public var description: String {
        switch self {
        case .setupFailed(let step, let errno):
            let message = String(cString: strerror(errno))
            if step.hasPrefix("execve") && errno == ENOENT {
                return "sandbox setup failed at \(step): \(message) (errno \(errno)); the program is not in the image"
            }
            return "sandbox setup failed at \(step): \(message) (errno \(errno))"
        case .syscall(let error): return error.description
        case .cgroup(let message): return "cgroup: \(message)"
        case .invalidSpec(let message): return "invalid sandbox spec: \(message)"
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
