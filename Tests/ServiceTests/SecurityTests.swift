import Foundation
import NIOHTTP1
import TestSupport
import Testing

@testable import Executor
@testable import Service

#if canImport(Glibc)
    import Glibc
#endif

/// Who may talk to `faasbox serve` and what a caller may take from the host (issue 16), tried as an attacker
/// would: an unprivileged local user, unsigned and forged requests over TCP, a root image with a read-write
/// mount, mounts and images outside what the operator allows.
@Suite(.serialized) struct SecurityTests {
    let scratch = TestPaths.temporaryDirectory("security")

    /// A job image whose `scf_bootstrap` runs `script` with busybox, as the image's `user`.
    func jobImage(_ name: String, user: String? = nil, script: String) throws -> String {
        let path = "\(scratch)/images/\(name).tar"
        try FileManager.default.createDirectory(atPath: "\(scratch)/images", withIntermediateDirectories: true)
        var builder = OCIArchiveBuilder(layers: [
            .init(try OCIArchiveBuilder.busyboxEntries() + [.file("scf_bootstrap", "#!/bin/sh\n\(script)\n", mode: 0o755)])
        ])
        builder.user = user
        try builder.write(to: path)
        return path
    }

    func options(mountRoots: [String] = []) -> FunctionService.Options {
        var options = TestServer.fast
        options.host = HostPolicy(mountRoots: mountRoots, imageRoots: [TestPaths.imagesDirectory, "\(scratch)/images"])
        return options
    }

    func deploy(_ server: TestServer, _ name: String, _ spec: [String: Any]) async throws -> TestServer.Answer {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        return try await server.call(.PUT, "/functions/\(name)", body: body)
    }

    static func code(_ answer: TestServer.Answer) -> String { (answer.json["Error"] as? [String: Any])?["Code"] as? String ?? "" }
    static func message(_ answer: TestServer.Answer) -> String {
        (answer.json["Error"] as? [String: Any])?["Message"] as? String ?? answer.text
    }

    // MARK: who may talk to it

    @Test func theSocketIsRootsAndAnUnprivilegedUserCannotOpenIt() async throws {
        try await withServer { server in
            var st = stat()
            #expect(lstat(server.socket, &st) == 0)
            #expect((st.st_mode & S_IFMT) == S_IFSOCK)
            #expect(st.st_uid == 0)
            let hasGroup = getgrnam("faasbox") != nil
            #expect(st.st_mode & 0o777 == (hasGroup ? 0o660 : 0o600), "mode \(String(st.st_mode & 0o777, radix: 8))")
            let connect =
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n print('refused', e.errno)"
            let asNobody = try TestPaths.run(
                "/usr/bin/setpriv",
                ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", connect, server.socket])
            #expect(asNobody.output.contains("refused \(EACCES)"), "\(asNobody.output)")
            let asRoot = try TestPaths.run("/usr/bin/python3", ["-c", connect, server.socket])
            #expect(asRoot.output.contains("connected"), "\(asRoot.output)")
            // A request after it: that bare connection has been taken by the server before it is shut down.
            #expect(try await server.call(.GET, "/healthz").status == 200)
        }
    }

    @Test func unsignedForgedUnknownAndStaleRequestsOverTCPAreRefusedAndDoNothing() async throws {
        try await withServer(options: options()) { server in
            let spec = Array(#"{"image": "\#(TestPaths.sampleImage("hello-web"))"}"#.utf8)
            let (id, secret) = (server.credential.SecretId, server.credential.SecretKey)
            let now = Int(Date().timeIntervalSince1970)
            let cases: [(String, TestServer.Signing, [(String, String)], String)] = [
                ("unsigned", .none, [], "AuthFailure.InvalidAuthorization"),
                ("malformed", .none, [("Authorization", "Bearer x")], "AuthFailure.InvalidAuthorization"),
                ("wrong key", .key(id: id, secret: "not-the-key"), [], "AuthFailure.SignatureFailure"),
                ("unknown id", .key(id: "AKIDunknown", secret: secret), [], "AuthFailure.SecretIdNotFound"),
                ("stale", .key(id: id, secret: secret, timestamp: now - 330), [], "AuthFailure.SignatureExpire"),
                ("from the future", .key(id: id, secret: secret, timestamp: now + 330), [], "AuthFailure.SignatureExpire"),
                ("body swapped", .key(id: id, secret: secret, tamper: true), [], "AuthFailure.SignatureFailure"),
            ]
            for (what, signing, headers, code) in cases {
                let answer = try await server.callTCP(.PUT, "/functions/sneaky", body: spec, signing: signing, headers: headers)
                #expect(answer.status == 401, "\(what): \(answer.status) \(answer.text)")
                #expect(Self.code(answer) == code, "\(what): \(answer.text)")
                #expect(!answer.text.contains(secret), "no key in an error")
            }
            #expect(try await server.call(.GET, "/functions").array.isEmpty, "nothing was deployed")
            #expect(try await server.callTCP(.GET, "/metrics", signing: .none).status == 401, "metrics are signed")
            #expect(try await server.callTCP(.GET, "/healthz", signing: .none).status == 200, "healthz stays open")

            let signed = try await server.callTCP(.PUT, "/functions/sneaky", body: spec, signing: server.signed)
            #expect(signed.status == 200, "\(signed.text)")
            let listed = try await server.callTCP(.GET, "/functions?x=1", signing: server.signed)
            #expect(listed.array as? [String] == ["sneaky"], "a signed GET with a query: \(listed.text)")
            // A key deleted is refused from the next request on.
            #expect(try CredentialStore(stateDir: server.stateDir).delete(id))
            #expect(
                Self.code(try await server.callTCP(.GET, "/functions", signing: server.signed)) == "AuthFailure.SecretIdNotFound")
        }
    }

    @Test func webFunctionsOnTCPNeedASignatureUnlessDeployedPublic() async throws {
        try await withServer(options: options()) { server in
            #expect(try await server.deploy("private", image: "hello-web").status == 200)
            #expect(try await server.deploy("open", image: "hello-web", ["public": true]).status == 200)
            let refused = try await server.callTCP(.GET, "/web/private/hello", signing: .none)
            #expect(refused.status == 401 && Self.code(refused) == "AuthFailure.InvalidAuthorization", "\(refused.text)")
            let forged = try await server.callTCP(
                .POST, "/web/private/hello", body: Array("hi".utf8),
                signing: .key(id: server.credential.SecretId, secret: server.credential.SecretKey, tamper: true))
            #expect(forged.status == 401 && Self.code(forged) == "AuthFailure.SignatureFailure", "\(forged.text)")
            #expect(try await server.callTCP(.GET, "/web/private/hello?a=1", signing: server.signed).status == 200)
            #expect(
                try await server.callTCP(.POST, "/web/private/hello", body: Array("hi".utf8), signing: server.signed).status
                    == 200)
            #expect(try await server.callTCP(.GET, "/web/open/hello", signing: .none).status == 200, "public: a browser's call")
            #expect(try await server.call(.GET, "/web/private/hello").status == 200, "the socket needs no signature")
        }
    }

    // MARK: what a caller may ask for

    @Test func mountsHostNetworkAndImagePathsAreTheOperatorsToGive() async throws {
        let allowed = "\(scratch)/allowed"
        try FileManager.default.createDirectory(atPath: "\(allowed)/data", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: "\(allowed)/escape")
        try FileManager.default.createSymbolicLink(atPath: "\(allowed)/escape", withDestinationPath: "/etc")
        let outsideImage = "\(scratch)/elsewhere.tar"
        try? FileManager.default.removeItem(atPath: outsideImage)
        try FileManager.default.copyItem(atPath: TestPaths.sampleImage("hello-job"), toPath: outsideImage)
        try await withServer(options: options(mountRoots: [allowed])) { server in
            let job = TestPaths.sampleImage("hello-job")
            let cases: [([String: Any], String, String)] = [
                (["mounts": [["source": "/etc", "target": "/mnt"]]], "mounts[0].source", "not under a directory"),
                (["mounts": [["source": "\(allowed)/escape", "target": "/mnt"]]], "mounts[0].source", "leads out"),
                (["mounts": [["source": "\(allowed)/../..", "target": "/mnt"]]], "mounts[0].source", "leads out"),
                (["mounts": [["source": "\(allowed)/data", "target": "/proc/self/root/etc"]]], "mounts", "under /proc"),
                (["mounts": [["source": "\(allowed)/data", "target": "/tmp"]]], "mounts", "/tmp"),
                (["network": "host"], "network", "--allow-host-network"),
                (["image": "/etc/passwd"], "image", "not under an image root"),
                (["image": outsideImage], "image", "not under an image root"),
                (["image": "sha256:" + String(repeating: "0", count: 64)], "image", "no uploaded image"),
                (["env": ["SCF_FUNCTIONNAME": "other"]], "env", "set by faasbox"),
                (["env": ["_HANDLER": "x.y"]], "env", "set by faasbox"),
                // C strings end at NUL: refused with the field named, never cut short without a word.
                (["env": ["A": "x\u{0}y"]], "env", "NUL byte"),
                (["args": ["a\u{0}b"]], "args", "NUL byte"),
                (["command": ["/bin/sh\u{0}x"]], "command", "NUL byte"),
            ]
            for (fields, field, reason) in cases {
                var spec: [String: Any] = ["image": job, "type": "job"]
                spec.merge(fields) { $1 }
                let answer = try await deploy(server, "refused", spec)
                #expect(answer.status == 400, "\(fields): \(answer.text)")
                #expect(
                    Self.message(answer).contains("\(field):") && Self.message(answer).contains(reason),
                    "\(fields): \(answer.text)")
            }
            let env = try await deploy(server, "refused", ["image": job, "type": "job", "env": ["SCF_X": "1"]])
            #expect(Self.code(env) == "InvalidParameterValue.EnvironmentSystemProtect", "\(env.text)")
            #expect(try await server.call(.GET, "/functions").array.isEmpty)

            // Inside the allowed root, the resolved directory is what is bound.
            let ok = try await deploy(
                server, "mounted", ["image": job, "type": "job", "mounts": [["source": "\(allowed)/./data", "target": "/data"]]])
            #expect(ok.status == 200, "\(ok.text)")
        }
    }

    /// The attack of the issue: an image whose User is 0, a read-write mount of a root-owned 0755 directory
    /// inside an allowed root. Its root is an unprivileged id of its own on the host: nothing is created.
    @Test func rootInTheImageIsNotRootOnTheHost() async throws {
        let allowed = "\(scratch)/rootowned"
        try FileManager.default.createDirectory(atPath: allowed, withIntermediateDirectories: true)
        chmod(allowed, 0o755)
        let image = try jobImage(
            "root-writer", user: "0",
            script: """
                echo "uid=$(id -u) gid=$(id -g)"; echo "map=$(cat /proc/self/uid_map | tr -s ' ')"
                echo "tmp-owner=$(stat -c %u /tmp)"
                echo "rootfs-owners=$(stat -c %u:%g / /bin /bin/busybox /scf_bootstrap | tr '\\n' ' ')"
                touch /data/pwned && echo WROTE || echo "write refused"
                """)
        try await withServer(options: options(mountRoots: [allowed])) { server in
            let spec: [String: Any] = [
                "image": image, "type": "job", "mounts": [["source": allowed, "target": "/data", "readOnly": false]],
            ]
            #expect(try await deploy(server, "rooted", spec).status == 200)
            #expect(try await deploy(server, "rooted2", spec).status == 200)
            let first = try await server.invoke("rooted", tail: true)
            let second = try await server.invoke("rooted2", tail: true)
            let (log1, log2) = (first.json["Log"] as? String ?? "", second.json["Log"] as? String ?? "")
            #expect(log1.contains("uid=0 gid=0"), "root inside: \(log1)")
            #expect(log1.contains("write refused") && !log1.contains("WROTE"), "\(log1)")
            #expect(!FileManager.default.fileExists(atPath: "\(allowed)/pwned"))
            #expect(log1.contains("tmp-owner=0"), "/tmp is the function's own inside: \(log1)")
            #expect(log1.contains("rootfs-owners=0:0 0:0 0:0 0:0 "), "the image's files are its root's inside: \(log1)")
            // Each function's root is a host range of its own.
            func hostRoot(_ log: String) -> String? {
                log.split(separator: "\n").first { $0.contains("map=") }.map {
                    String($0.split(separator: " ").dropFirst(2).first ?? "")
                }
            }
            let (base1, base2) = (hostRoot(log1), hostRoot(log2))
            #expect(base1 != nil && base1 != "0" && base1 != base2, "\(log1)\n\(log2)")
        }
    }

    @Test func anImageUserThatTheKernelReadsAsUnchangedIsRefused() async throws {
        for user in ["4294967295", "1000:4294967295"] {
            let image = try jobImage("minus-one", user: user, script: "id")
            try await withServer(options: options()) { server in
                #expect(try await deploy(server, "minusone", ["image": image, "type": "job"]).status == 200)
                let answer = try await server.invoke("minusone", tail: true)
                #expect(answer.status == 400, "\(user): \(answer.text)")
                #expect(answer.text.contains("4294967295"), "\(answer.text)")
            }
        }
    }

    /// `readOnly` covers the whole bound tree: a submount of the source is read-only, nosuid and nodev too.
    @Test func aReadOnlyMountIsReadOnlyAllTheWayDown() async throws {
        let allowed = "\(scratch)/tree"
        try FileManager.default.createDirectory(atPath: "\(allowed)/sub", withIntermediateDirectories: true)
        #expect(mount("tmpfs", "\(allowed)/sub", "tmpfs", 0, "size=1m") == 0)
        defer { umount2("\(allowed)/sub", Int32(MNT_DETACH)) }
        let image = try jobImage(
            "ro-writer",
            script: """
                touch /data/top 2>/dev/null && echo top-written || echo top-refused
                touch /data/sub/x 2>/dev/null && echo sub-written || echo sub-refused
                grep ' /data/sub ' /proc/self/mountinfo
                """)
        try await withServer(options: options(mountRoots: [allowed])) { server in
            #expect(
                try await deploy(
                    server, "ro", ["image": image, "type": "job", "mounts": [["source": allowed, "target": "/data"]]]
                ).status
                    == 200)
            let log = try await server.invoke("ro", tail: true).json["Log"] as? String ?? ""
            #expect(log.contains("top-refused") && log.contains("sub-refused"), "\(log)")
            let line = log.split(separator: "\n").first { $0.contains(" /data/sub ") } ?? ""
            let options = line.split(separator: " ").dropFirst(5).first.map { $0.split(separator: ",") } ?? []
            #expect(options.contains("ro") && options.contains("nosuid") && options.contains("nodev"), "\(line)")
        }
    }

    // MARK: images from another machine

    @Test func anArchiveUploadedOverTCPIsNamedByItsDigestAndRuns() async throws {
        try await withServer(options: options()) { server in
            let archive = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPaths.sampleImage("hello-event"))))
            let hash = TC3Signature.sha256Hex(archive)
            let uploaded = try await server.callTCP(
                .POST, "/images", body: archive, signing: server.signed, headers: [("X-TC-Content-SHA256", hash)],
                contentType: "application/octet-stream")
            #expect(uploaded.status == 201, "\(uploaded.text)")
            let digest = try #require(uploaded.json["digest"] as? String)
            #expect(digest.hasPrefix("sha256:"))
            let spec = Array(#"{"image": "\#(digest)", "type": "event"}"#.utf8)
            #expect(try await server.callTCP(.PUT, "/functions/uploaded", body: spec, signing: server.signed).status == 200)
            let result = try await server.callTCP(
                .POST, "/functions/uploaded/invocations", body: Array(#"{"k":1}"#.utf8), signing: server.signed)
            #expect(result.status == 200, "\(result.text)")
            #expect((result.json["RetMsg"] as? String)?.contains(#""k":1"#) == true, "\(result.text)")

            // A body that does not match its declared hash is refused, and nothing is kept.
            let before = try FileManager.default.contentsOfDirectory(atPath: "\(server.stateDir)/uploads")
            var swapped = archive
            swapped[swapped.count / 2] ^= 0xff
            let forged = try await server.callTCP(
                .POST, "/images", body: swapped, signing: server.signed, headers: [("X-TC-Content-SHA256", hash)],
                contentType: "application/octet-stream")
            #expect(forged.status == 401 && Self.code(forged) == "AuthFailure.SignatureFailure", "\(forged.text)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(server.stateDir)/uploads") == before)
        }
    }

    /// `faasbox deploy NAME ./x.tar` against a TCP server uploads the archive; the function runs.
    @Test func theCLIUploadsALocalArchiveAndSignsOverTCP() async throws {
        let server = try TestServer.spawn(stateDir: TestPaths.temporaryDirectory("cli-upload"))
        defer { Task { await server.stop() } }
        let binary = "\(TestPaths.packageRoot)/.build/debug/faasbox"
        let environment = [
            "FAASBOX_SERVER": server.url, "TENCENTCLOUD_SECRET_ID": server.credential.SecretId,
            "TENCENTCLOUD_SECRET_KEY": server.credential.SecretKey,
        ]
        let local = "\(scratch)/mine.tar"
        try? FileManager.default.removeItem(atPath: local)
        try FileManager.default.copyItem(atPath: TestPaths.sampleImage("hello-event"), toPath: local)
        let deployed = try TestPaths.run(binary, ["deploy", "mine", local, "--type", "event"], environment: environment)
        #expect(deployed.status == 0 && deployed.output.contains("deployed mine"), "\(deployed.output)")
        let invoked = try TestPaths.run(binary, ["invoke", "mine", "--event", #"{"from":"cli"}"#], environment: environment)
        #expect(invoked.status == 0 && invoked.output.contains(#""from":"cli""#), "\(invoked.output)")
        var wrong = environment
        wrong["TENCENTCLOUD_SECRET_KEY"] = "wrong"
        let refused = try TestPaths.run(binary, ["functions"], environment: wrong)
        #expect(refused.status != 0 && refused.output.contains("AuthFailure.SignatureFailure"), "\(refused.output)")
        await server.stop()
    }
}
