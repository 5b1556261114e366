import Sandbox

/// What this host offers instances, found out once per process (not in any instance's InitRuntime).
public enum FunctionHost {
    /// Detects the host's cgroup setup (and, on cgroup v2, delegates controllers below faasbox's own cgroup)
    /// now, so that the first cold start does not pay for it. Returns what was found, as `doctor` prints it.
    @discardableResult
    public static func prepare() -> String { "\(Sandbox.prepareHost())" }

    /// Whether faasbox-init (pid 1 of every instance) was found, for `faasbox doctor`.
    public static var initBinaryStatus: String { Sandbox.initBinaryStatus }
}
