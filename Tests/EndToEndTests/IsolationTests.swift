import Bootstrap
import Diagnostics
import Foundation
import ImageRuntime
import TestSupport
import Testing

/// The isolation self-test (`faasbox doctor --isolation`) in the suite: every property must hold.
@Suite(.serialized) struct IsolationTests {
    /// As the default non-root user, in a user namespace, and as root in the image (which puts it in one).
    @Test(arguments: [(nil, false), (FunctionConfig.UserNamespace.default, false), (nil, true)])
    func everyIsolationPropertyHolds(userNamespace: FunctionConfig.UserNamespace?, asRoot: Bool) async throws {
        let store = try ImageStore(root: TestPaths.temporaryDirectory("isolation"))
        let verdicts = try await IsolationCheck.run(
            probeImage: TestPaths.sampleImage("isolation-probe"), store: store, userNamespace: userNamespace, asRoot: asRoot)
        #expect(verdicts.count >= 40, "the probe ran to its end: \(verdicts.count) verdicts")
        if asRoot {
            #expect(
                verdicts.contains { $0.property == "not host root" && $0.detail.hasPrefix("uid 0 inside is host uid 100000") })
        }
        for verdict in verdicts { #expect(verdict.held, "\(verdict)") }
        for property in [
            "capabilities empty", "seccomp in filter mode", "pid namespace", "read-only rootfs",
            "host loopback ports unreachable", "only lo present", "pids limit stops a fork bomb", "vsock sockets denied",
            "ptrace denied", "io_uring denied", "not host root",
            "/tmp capped at 512 MB", "memory bomb reported as OOM by the cgroup",
        ] {
            #expect(verdicts.contains { $0.property == property }, "\(property) was checked")
        }
    }
}
