import Foundation
import TestSupport
import Testing

@testable import Sandbox

@Suite struct SeccompTests {
    func run(_ script: String, profile: SeccompProfile?) async throws -> String {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec(script)
        spec.seccomp = profile
        let process = try await Sandbox.spawn(spec)
        _ = await process.wait()
        let out = try process.readStdout()
        await process.stop()
        return out
    }

    static let probe =
        "grep -E 'Seccomp:|NoNewPrivs|CapEff|CapBnd' /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?"

    @Test func theDefaultProfileFiltersAndDeniesNamespaces() async throws {
        let out = try await run(Self.probe, profile: .default)
        #expect(out.contains("Seccomp:\t2\n"))
        #expect(out.contains("NoNewPrivs:\t1\n"))
        #expect(out.contains("CapEff:\t0000000000000000\n"))
        #expect(out.contains("CapBnd:\t0000000000000000\n"))
        #expect(out.contains("unshare=1\n"), "unshare(CLONE_NEWUSER) must be refused: \(out)")
    }

    /// The same call without a filter succeeds (an unprivileged user namespace), so the refusal above is
    /// seccomp's; in logging mode nothing is refused.
    @Test func withoutAFilterOrInLoggingModeTheCallGoesThrough() async throws {
        let unfiltered = try await run(Self.probe, profile: nil)
        #expect(unfiltered.contains("Seccomp:\t0\n"))
        #expect(unfiltered.contains("unshare=0\n"), "\(unfiltered)")
        let logging = try await run(Self.probe, profile: SeccompProfile.default.loggingOnly)
        #expect(logging.contains("Seccomp:\t2\n"))
        #expect(logging.contains("unshare=0\n"), "\(logging)")
    }

    @Test func theLinux32PersonalityIsAllowed() async throws {
        let out = try await run("linux32 true; echo linux32=$?", profile: .default)
        #expect(out.contains("linux32=0\n"))
    }

    @Test func profilesRoundTripAsJSON() throws {
        let data = try JSONEncoder().encode(SeccompProfile.default)
        #expect(try JSONDecoder().decode(SeccompProfile.self, from: data) == .default)
        #expect(try Seccomp.program(for: .default).count % 8 == 0)
    }
}

@Suite struct CapabilityTests {
    @Test func namesMapToTheKernelsNumbers() throws {
        #expect(try Capabilities.number(named: "CAP_CHOWN") == 0)
        #expect(try Capabilities.number(named: "net_bind_service") == 10)
        #expect(try Capabilities.number(named: "CAP_CHECKPOINT_RESTORE") == 40)
        #expect(Capabilities.name(of: 21) == "cap_sys_admin")
        #expect(throws: SandboxError.self) { try Capabilities.number(named: "cap_fly") }
    }

    @Test func aKeptCapabilityIsTheOnlyOneInEverySet() async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        var spec = rootfs.spec("grep -E 'Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status")
        spec.capabilities = [try Capabilities.number(named: "NET_BIND_SERVICE")]
        let process = try await Sandbox.spawn(spec)
        _ = await process.wait()
        let out = try process.readStdout()
        await process.stop()
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(out.contains("\(set):\t0000000000000400\n"), "\(set) in \(out)")
        }
    }
}
