/// The cold-start phases of one instance, measured on a monotonic clock.
public struct PhaseTimings: Sendable, Equatable {
    /// ImageRuntime: verify the image, unpack what the store lacks, compose the rootfs.
    public var pullCode: Duration = .zero
    /// Sandbox: from the spawn call until the bootstrap is exec'd in the finished sandbox.
    public var initRuntime: Duration = .zero
    /// From exec until the function is ready (port 9000 accepts).
    public var initFunction: Duration = .zero
    /// The whole cold start, from the request for an instance until it is ready.
    public var coldstart: Duration = .zero

    /// Coldstart not accounted for by the three phases (faasbox's own work between them).
    public var overhead: Duration { coldstart - pullCode - initRuntime - initFunction }
}
