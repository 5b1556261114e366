import Bootstrap
import Diagnostics
import Foundation
import ImageRuntime
import TestSupport
import Testing

/// The isolation self-test (`faasbox doctor --isolation`) in the suite: every property must hold.
@Suite(.serialized) struct IsolationTests {
    @Test(arguments: [nil, FunctionConfig.UserNamespace.default])
    func everyIsolationPropertyHolds(userNamespace: FunctionConfig.UserNamespace?) async throws {
        let store = try ImageStore(root: TestPaths.temporaryDirectory("isolation"))
        let verdicts = try await IsolationCheck.run(
            probeImage: TestPaths.sampleImage("isolation-probe"), store: store, userNamespace: userNamespace)
        #expect(verdicts.count >= 33, "the probe ran to its end: \(verdicts.count) verdicts")
        for verdict in verdicts { #expect(verdict.held, "\(verdict)") }
        for property in [
            "capabilities empty", "seccomp in filter mode", "pid namespace", "read-only rootfs",
            "host loopback ports unreachable", "only lo present", "pids limit stops a fork bomb",
            "/tmp capped at 512 MB", "memory bomb reported as OOM by the cgroup",
        ] {
            #expect(verdicts.contains { $0.property == property }, "\(property) was checked")
        }
    }
}
