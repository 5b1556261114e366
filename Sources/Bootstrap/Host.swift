import Sandbox

/// What this host offers instances, found out once per process (not in any instance's InitRuntime).
public enum FunctionHost {
    /// Detects the host's cgroup setup (and, on cgroup v2, delegates controllers below faasbox's own cgroup)
    /// now, so that the first cold start does not pay for it. Returns what was found, as `doctor` prints it.
    @discardableResult
    public static func prepare() -> String { "\(Sandbox.prepareHost())" }

    /// How idle instances are frozen here, for `faasbox doctor`.
    public static var freezerStatus: String {
        guard let freezer = CgroupHost.current.freezer else { return "no freezer: idle instances keep running" }
        return "\(freezer): an instance idle for \(Int(SCFContract.defaultFreezeIdleAfter.milliseconds)) ms is frozen "
            + "(serve --freeze-idle-after)"
    }

    /// Whether faasbox-init (pid 1 of every instance) was found, for `faasbox doctor`.
    public static var initBinaryStatus: String { Sandbox.initBinaryStatus }
}
