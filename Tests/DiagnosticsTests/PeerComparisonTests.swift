import Foundation
import ImageRuntime
import TestSupport
import Testing

@testable import Diagnostics

/// `bench --compare`: faasbox and the peers installed by scripts/install-deps run interleaved; each peer either
/// has a sample per round or says why it could not run here.
@Suite struct PeerComparisonTests {
    @Test func sandboxStartsOfEveryInstalledPeerAreMeasuredEachRound() async throws {
        let store = try ImageStore(root: TestPaths.temporaryDirectory("compare"))
        let result = try await PeerComparison(store: store)
            .sandboxStarts(image: TestPaths.sampleImage("hello-web"), program: ["/bin/true"], runs: 2)
        let byName = Dictionary(uniqueKeysWithValues: result.samples.map { ($0.name, $0.values.count) })
        #expect(byName["faasbox InitRuntime"] == 2 && byName["faasbox spawn to exit"] == 2)
        for peer in ["runc run", "bwrap"] where PeerComparison.which(String(peer.split(separator: " ")[0])) != nil {
            #expect(byName[peer] == 2 || result.unavailable.contains { $0.name == peer && !$0.reason.isEmpty }, "\(peer)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(store.root)/instances").isEmpty)
    }

    @Test func freshUnpacksByFaasboxUmociAndTarAreMeasuredEachRound() async throws {
        let state = TestPaths.temporaryDirectory("compare")
        let store = try ImageStore(root: state)
        let result = try await PeerComparison(store: store)
            .freshUnpacks(image: TestPaths.sampleImage("hello-web"), runs: 2, workDirectory: state)
        let byName = Dictionary(uniqueKeysWithValues: result.samples.map { ($0.name, $0.values.count) })
        #expect(byName["faasbox pull (fresh store)"] == 2)
        #expect(byName["tar -x of each layer"] == 2)
        #expect(byName["umoci unpack"] == 2 || result.unavailable.contains { $0.name == "umoci unpack" })
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).allSatisfy { !$0.hasPrefix("compare-unpack") })
    }

    @Test func firstResponsesOfAColdWebFunctionUnderFaasboxAndRunc() async throws {
        let store = try ImageStore(root: TestPaths.temporaryDirectory("compare"))
        let result = try await PeerComparison(store: store)
            .firstResponses(image: TestPaths.sampleImage("hello-web"), path: "/hello", runs: 2)
        let byName = Dictionary(uniqueKeysWithValues: result.samples.map { ($0.name, $0.values.count) })
        #expect(byName["faasbox first response"] == 2)
        #expect(byName["runc first response"] == 2 || result.unavailable.contains { $0.name == "runc first response" })
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(store.root)/instances").isEmpty)
    }
}
