import Foundation
import SystemSupport
import TestSupport
import Testing

@testable import Sandbox

#if canImport(Glibc)
    import Glibc
#endif

/// A network namespace made before the sandbox: faasbox listens in it first, the program connects to it.
@Suite struct NetworkNamespaceTests {
    @Test(arguments: [false, true])
    func aProgramReachesAListenerMadeInItsNamespaceBeforeItStarted(userNamespace: Bool) async throws {
        let rootfs = try BusyboxRootfs()
        defer { rootfs.remove() }
        let netns = try NetworkNamespace()
        let listener = try netns.listen(port: 9001)
        var spec = rootfs.spec(
            "echo \"ifaces=$(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')\" | nc 127.0.0.1 9001")
        spec.network = .namespace(netns)
        if userNamespace { spec.userNamespace = .default }
        let process = try await Sandbox.spawn(spec)
        let accepted = try await runBlocking { () throws(SystemCallError) -> [UInt8] in
            let fd = accept(listener.rawValue, nil, nil)
            if fd < 0 { throw .current("accept4") }
            return try OwnedFileDescriptor(.init(rawValue: fd)).readToEnd()
        }
        let status = await process.wait()
        await process.stop()
        #expect(String(decoding: accepted, as: UTF8.self) == "ifaces=lo,\n")
        #expect(status == .exited(0))
    }

    @Test func theHostDoesNotSeeTheNamespacesListener() throws {
        let netns = try NetworkNamespace()
        let (hostListener, port) = try NetworkNamespace.listenOnHost()
        _ = hostListener
        // The same port inside the namespace is free: the two stacks are separate.
        let inside = try netns.listen(port: port)
        #expect(inside.rawValue >= 0)
    }
}
