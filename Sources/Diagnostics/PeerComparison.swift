import Bootstrap
import Foundation
import ImageRuntime
import SystemSupport

/// `faasbox bench --compare`: faasbox and the peer tools installed on this host (runc, crun, bwrap) each start
/// a sandbox over the same rootfs running `program` to its exit, interleaved (faasbox, runc, crun, bwrap,
/// faasbox, …) so that a slow moment of the machine falls on all of them alike.
public struct PeerComparison: Sendable {
    public struct Result: Sendable {
        public init(samples: [Samples], unavailable: [(name: String, reason: String)]) {
            self.samples = samples
            self.unavailable = unavailable
        }

        /// faasbox's InitRuntime and spawn-to-exit, then each peer's whole command, start to exit.
        public let samples: [Samples]
        /// Peers that are not installed or refused this host, with the reason.
        public let unavailable: [(name: String, reason: String)]
    }

    public let store: ImageStore

    public init(store: ImageStore) { self.store = store }

    public func sandboxStarts(
        image: String, program: [String], runs: Int, progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Result {
        let pulled = try await store.pull(image)
        let shared = try store.composeRootfs(pulled, instanceID: "compare-\(UInt32.random(in: 0...UInt32.max))")
        defer { _ = shared.remove() }
        let bundle = try makeRuncBundle(rootfs: shared.path, program: program)
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        var peers = peerCommands(bundle: bundle, rootfs: shared.path, program: program)
        var unavailable: [(String, String)] = []
        var samples = [Samples("faasbox InitRuntime"), Samples("faasbox spawn to exit")] + peers.map { Samples($0.name) }
        let clock = ContinuousClock()
        for i in 0..<runs {
            let (initRuntime, total) = try await faasboxRun(pulled, program: program, index: i)
            samples[0].add(initRuntime)
            samples[1].add(total)
            for (index, peer) in peers.enumerated() where peer.failure == nil {
                let begin = clock.now
                let failure = Self.runCommand(peer.argv(i))
                if let failure {
                    peers[index].failure = failure
                    unavailable.append((peer.name, failure))
                } else {
                    samples[2 + index].add(clock.now - begin)
                }
            }
            progress(i + 1)
        }
        return Result(samples: samples.filter { !$0.values.isEmpty }, unavailable: unavailable)
    }

    /// Time to the first response of a web function from a cold start with the image stored: faasbox (cold start,
    /// then `GET path` on :9000) and, interleaved, `runc run -d` of the same rootfs running the same bootstrap
    /// in a network namespace with lo up, polled on :9000 until the same request is answered. Both poll every
    /// 0.2 ms at first, backing off to 5 ms.
    public func firstResponses(
        image: String, path: String, runs: Int, progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Result {
        let pulled = try await store.pull(image)
        let shared = try store.composeRootfs(pulled, instanceID: "compare-\(UInt32.random(in: 0...UInt32.max))")
        defer { _ = shared.remove() }
        var faasbox = Samples("faasbox first response"), runc = Samples("runc first response")
        var unavailable: [(String, String)] = []
        let runcPath = Self.which("runc")
        if runcPath == nil { unavailable.append(("runc first response", "not installed")) }
        let bootstrap = try BootstrapCommand.resolve(
            config: FunctionConfig(name: "compare"), image: pulled.config.config, rootfs: shared.path, imageName: image)
        let clock = ContinuousClock()
        var config = FunctionConfig(name: "compare")
        config.stopGrace = .zero
        let request = "GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        for i in 0..<runs {
            var begin = clock.now
            let instance = try await FunctionInstance.coldStart(image: image, store: store, config: config)
            _ = try await instance.deliver(
                .http(HTTPRequest(method: "GET", target: path)), requestID: "compare-\(i)", timeout: .seconds(30))
            faasbox.add(clock.now - begin)
            await instance.stop()

            if let runcPath, unavailable.isEmpty {
                let netns = try IsolatedNetwork()
                let bundle = try makeRuncBundle(
                    rootfs: shared.path, program: bootstrap.arguments, cwd: bootstrap.workingDirectory, netns: netns.path)
                defer { try? FileManager.default.removeItem(atPath: bundle) }
                let id = "fb-compare-web-\(UInt32.random(in: 0...UInt32.max))"
                begin = clock.now
                if let failure = Self.runCommand([runcPath, "run", "-d", "-b", bundle, id], detached: true) {
                    unavailable.append(("runc first response", failure))
                } else {
                    let answered = await Self.pollHTTP(netns, request: request, deadline: clock.now + .seconds(30))
                    if answered {
                        runc.add(clock.now - begin)
                    } else {
                        unavailable.append(("runc first response", "no answer on :9000 within 30 s"))
                    }
                    _ = Self.runCommand([runcPath, "delete", "-f", id], detached: true)
                }
            }
            progress(i + 1)
        }
        return Result(samples: [faasbox, runc].filter { !$0.values.isEmpty }, unavailable: unavailable)
    }

    private static func pollHTTP(_ netns: IsolatedNetwork, request: String, deadline: ContinuousClock.Instant) async -> Bool {
        var pause = Duration.microseconds(200)
        while ContinuousClock.now < deadline {
            if let socket = try? netns.connect(port: 9000) {
                let bytes = Array(request.utf8)
                let sent = bytes.withUnsafeBytes { write(socket.rawValue, $0.baseAddress, $0.count) }
                if sent == bytes.count, let reply = try? socket.readToEnd(limit: 1 << 20), reply.starts(with: Array("HTTP/".utf8))
                {
                    return true
                }
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(5))
        }
        return false
    }

    /// Fresh unpacks of `image` (an oci-archive or layout directory): faasbox's pull into an empty store
    /// (verifying every digest), `umoci unpack` of the same layout, and GNU `tar -x` of each layer blob in order,
    /// interleaved, each into a new directory under `workDirectory` (the same filesystem for all).
    public func freshUnpacks(
        image: String, runs: Int, workDirectory: String, progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Result {
        let work = "\(workDirectory)/compare-unpack-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileSystem.removeTree(work) }
        let (layout, tag, layers) = try await prepareLayout(image, in: work)
        var unavailable: [(String, String)] = []
        var faasbox = Samples("faasbox pull (fresh store)"), umoci = Samples("umoci unpack"),
            tar = Samples("tar -x of each layer")
        var umociFailure =
            tag == nil ? "the layout names no tag for the manifest" : Self.which("umoci") == nil ? "not installed" : nil
        let clock = ContinuousClock()
        for i in 0..<runs {
            let store = try ImageStore(root: "\(work)/store-\(i)")
            var begin = clock.now
            _ = try await store.pull(image)
            faasbox.add(clock.now - begin)
            try? FileSystem.removeTree(store.root)

            if umociFailure == nil, let tag, let path = Self.which("umoci") {
                begin = clock.now
                if let failure = Self.runCommand([path, "unpack", "--image", "\(layout):\(tag)", "\(work)/bundle-\(i)"]) {
                    umociFailure = failure
                } else {
                    umoci.add(clock.now - begin)
                }
                try? FileSystem.removeTree("\(work)/bundle-\(i)")
            }

            let target = "\(work)/tar-\(i)"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            begin = clock.now
            for layer in layers {
                if let failure = Self.runCommand(["/bin/tar", "-xf", layer, "-C", target]) {
                    throw ComparisonError("tar -xf \(layer): \(failure)")
                }
            }
            tar.add(clock.now - begin)
            try? FileSystem.removeTree(target)
            progress(i + 1)
        }
        if let umociFailure { unavailable.append(("umoci unpack", umociFailure)) }
        return Result(samples: [faasbox, umoci, tar].filter { !$0.values.isEmpty }, unavailable: unavailable)
    }

    /// The image as a layout directory (an archive is extracted, untimed), the tag of the manifest faasbox picks,
    /// and its layer blobs, bottom first.
    private func prepareLayout(_ image: String, in work: String) async throws -> (String, String?, [String]) {
        let pulled = try await ImageStore(root: "\(work)/probe").pull(image)
        // PATH or PATH:tag, a layout directory or an archive.
        var layout = image
        if let colon = image.lastIndex(of: ":"), Self.isDirectory(String(image[..<colon])) {
            layout = String(image[..<colon])
        }
        if !Self.isDirectory(layout) {
            layout = "\(work)/layout"
            try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
            if let failure = Self.runCommand(["/bin/tar", "-xf", image, "-C", layout]) {
                throw ComparisonError("tar -xf \(image): \(failure)")
            }
        }
        try? FileSystem.removeTree("\(work)/probe")
        func blob(_ digest: String) -> String { "\(layout)/blobs/\(digest.replacingOccurrences(of: ":", with: "/"))" }
        let manifest = try JSONDecoder().decode(
            Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: blob(pulled.manifestDigest))))
        let index = try JSONDecoder().decode(Index.self, from: Data(contentsOf: URL(fileURLWithPath: "\(layout)/index.json")))
        let tag = index.manifests.first { $0.digest == pulled.manifestDigest }?.annotations?["org.opencontainers.image.ref.name"]
        return (layout, tag, manifest.layers.map { blob($0.digest) })
    }

    private func faasboxRun(_ image: PulledImage, program: [String], index: Int) async throws -> (Duration, Duration) {
        let run = try await SandboxRun.run(
            program, image: image, store: store, name: "compare-\(index)-\(UInt32.random(in: 0...UInt32.max))")
        return (run.initRuntime, run.total)
    }

    private struct Peer {
        let name: String
        let argv: (Int) -> [String]
        var failure: String?
    }

    private func peerCommands(bundle: String, rootfs: String, program: [String]) -> [Peer] {
        var peers: [Peer] = []
        let tag = UInt32.random(in: 0...UInt32.max)
        for runtime in ["runc", "crun"] {
            if let path = Self.which(runtime) {
                peers.append(Peer(name: "\(runtime) run", argv: { [path, "run", "-b", bundle, "fb-compare-\(tag)-\($0)"] }))
            }
        }
        if let bwrap = Self.which("bwrap") {
            let argv =
                [bwrap, "--unshare-all", "--ro-bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
                + program
            peers.append(Peer(name: "bwrap", argv: { _ in argv }))
        }
        return peers
    }

    /// An OCI bundle as `runc spec` writes it, over `rootfs` (read-only), running `program` without a terminal;
    /// with `netns`, in that network namespace (with lo up) and with a tmpfs on /tmp.
    private func makeRuncBundle(rootfs: String, program: [String], cwd: String = "/", netns: String? = nil) throws -> String {
        let bundle = NSTemporaryDirectory() + "faasbox-compare-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        guard let runc = Self.which("runc") ?? Self.which("crun") else { return bundle }
        if let failure = Self.runCommand([runc, "spec", "--bundle", bundle]) {
            throw ComparisonError("\(runc) spec: \(failure)")
        }
        let path = "\(bundle)/config.json"
        guard var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
            var process = config["process"] as? [String: Any], var linux = config["linux"] as? [String: Any],
            var mounts = config["mounts"] as? [[String: Any]]
        else { throw ComparisonError("\(path): not the JSON object runc spec writes") }
        process["args"] = program
        process["terminal"] = false
        process["cwd"] = cwd
        config["process"] = process
        config["root"] = ["path": rootfs, "readonly": true]
        if let netns {
            var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "network" }
            namespaces.append(["type": "network", "path": netns])
            linux["namespaces"] = namespaces
            config["linux"] = linux
            mounts.append([
                "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=536870912"],
            ])
            config["mounts"] = mounts
        }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return bundle
    }

    /// Runs a command to its exit; nil on success, else its last line of stderr (or its status). `detached`: for
    /// a command whose children outlive it (`runc run -d`), which must not inherit a pipe faasbox reads to its
    /// end: no pipes, its output discarded.
    static func runCommand(_ argv: [String], detached: Bool = false) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        let stderr = Pipe()
        if detached {
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
        } else {
            process.standardError = stderr
        }
        do { try process.run() } catch { return "\(error)" }
        let errorText = detached ? "" : String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 0 { return nil }
        return errorText.split(separator: "\n").last.map(String.init)
            ?? "\(argv[1]) exited with status \(process.terminationStatus)"
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

struct ComparisonError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
