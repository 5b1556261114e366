import ArgumentParser
import AsyncHTTPClient
import Executor
import Foundation
import ImageRuntime
import NIOCore
import NIOHTTP1
import Service

/// Where the client commands find `faasbox serve`, and the key they sign with over TCP.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server: unix:///PATH (default unix://\(Server.defaultSocket)) or http://HOST:PORT (env FAASBOX_SERVER).")
    var server: String = ProcessInfo.processInfo.environment["FAASBOX_SERVER"] ?? "unix://\(Server.defaultSocket)"

    @Option(help: "The SecretId to sign with over TCP (env TENCENTCLOUD_SECRET_ID).")
    var secretId: String? = ProcessInfo.processInfo.environment["TENCENTCLOUD_SECRET_ID"]

    @Option(help: "The SecretKey to sign with over TCP (env TENCENTCLOUD_SECRET_KEY).")
    var secretKey: String? = ProcessInfo.processInfo.environment["TENCENTCLOUD_SECRET_KEY"]

    enum Endpoint {
        case socket(String)
        case tcp(base: String, host: String)
    }

    var endpoint: Endpoint {
        if server.hasPrefix("unix://") { return .socket(String(server.dropFirst("unix://".count))) }
        if server.hasPrefix("http://"), let url = URL(string: server), let host = url.host {
            let base = server.hasSuffix("/") ? String(server.dropLast()) : server
            return .tcp(base: base, host: url.port.map { "\(host):\($0)" } ?? host)
        }
        fail("--server takes unix:///PATH or http://HOST:PORT, got \"\(server)\"")
    }

    /// Sends one request; returns the status, the headers and the body. Over TCP the request is signed
    /// (TC3-HMAC-SHA256); `payloadHash` is the body's SHA-256 when the caller has it already. A server that
    /// cannot be reached ends the command with a message saying so.
    func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [(String, String)] = [],
        contentType: String = "application/json", timeout: TimeAmount = .seconds(960)
    ) async -> (status: Int, headers: HTTPHeaders, body: [UInt8]) {
        var request: HTTPClientRequest
        switch endpoint {
        case .socket(let socket):
            guard let url = URL(httpURLWithSocketPath: socket, uri: path) else { fail("--server \(server): not a socket path") }
            request = HTTPClientRequest(url: url.absoluteString)
        case .tcp(let base, let host):
            guard let secretId, let secretKey, !secretId.isEmpty, !secretKey.isEmpty else {
                fail(
                    "\(server) is a TCP server: requests must be signed. Set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY "
                        + "(or --secret-id/--secret-key); `faasbox credentials create` on the server makes a key")
            }
            request = HTTPClientRequest(url: base + path)
            let (pathPart, query) =
                path.firstIndex(of: "?").map { (String(path[..<$0]), String(path[path.index(after: $0)...])) }
                ?? (path, "")
            let timestamp = Int(Date().timeIntervalSince1970)
            let payloadHash = TC3Signature.sha256Hex(body ?? [])
            // A large body's hash is declared, so that the server checks it as the body streams in, not after
            // holding it all (the server hashes at most 10 MB itself).
            if (body?.count ?? 0) > 1 << 20 { request.headers.add(name: "X-TC-Content-SHA256", value: payloadHash) }
            let signed = TC3Signature.Request(
                method: method.rawValue, path: pathPart, query: query,
                headers: [("content-type", contentType), ("host", host)], payloadHash: payloadHash)
            request.headers.add(name: "Host", value: host)
            request.headers.add(name: "X-TC-Timestamp", value: "\(timestamp)")
            request.headers.add(
                name: "Authorization",
                value: TC3Signature.authorization(signed, timestamp: timestamp, secretID: secretId, secretKey: secretKey))
        }
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let data = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), response.headers, Array(buffer: data))
        } catch {
            fail("cannot reach faasbox serve at \(server): \(error) (is it running? see `faasbox serve --help`)")
        }
    }

    /// The JSON body of a 2xx answer; anything else ends the command with the server's error message.
    func expectJSON(_ answer: (status: Int, headers: HTTPHeaders, body: [UInt8])) -> Any {
        let json = try? JSONSerialization.jsonObject(with: Data(answer.body))
        guard (200..<300).contains(answer.status) else {
            let error = (json as? [String: Any])?["Error"] as? [String: Any]
            fail("\(answer.status) \(error?["Code"] ?? ""): \(error?["Message"] ?? String(decoding: answer.body, as: UTF8.self))")
        }
        return json ?? [:]
    }
}

/// The event argument: JSON, or @FILE.
func readEvent(_ event: String) -> [UInt8] {
    guard event.hasPrefix("@") else { return Array(event.utf8) }
    guard let data = FileManager.default.contents(atPath: String(event.dropFirst())) else {
        fail("--event \(event): cannot read the file")
    }
    return [UInt8](data)
}

/// A line on stdout, written at once (unbuffered), for `--follow` and for scripts that wait on it.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func printJSON(_ value: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    print(String(decoding: data, as: UTF8.self))
}

struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deploy (or redeploy) a function on the server: its image and config; invalid fields are named.")

    @Argument(help: "The function's name (2–60 letters, digits, - or _, starting with a letter).")
    var name: String
    @Argument(
        help:
            "The function's image: a local archive (uploaded to the server), sha256:DIGEST (one uploaded before), or server:PATH (an archive under one of the server's --image-root)."
    )
    var image: String
    @OptionGroup var function: FunctionOptions
    @Option(help: "Invocations that may run at once (1–1000).") var concurrency: Int?
    @Option(help: "Instances started now and kept warm.") var provisioned: Int?
    @Option(help: "Seconds an idle instance is kept (1–86400).") var idleTimeout: Int?
    @Flag(help: "Answer /web/NAME/… on the server's TCP listener without a signature (as a browser calls it).")
    var `public` = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        var spec = function.spec(image: await resolveImage())
        (spec.concurrency, spec.provisioned, spec.idleTimeout) = (concurrency, provisioned, idleTimeout)
        if `public` { spec.public = true }
        let body = try JSONEncoder().encode(spec)
        let answer = await server.send(.PUT, "/functions/\(name)", body: [UInt8](body))
        let json = server.expectJSON(answer) as? [String: Any] ?? [:]
        print("deployed \(name)")
        let reports = json["provisionedReports"] as? [String] ?? []
        for report in reports { print(report) }
    }

    /// What the server is told the image is: an uploaded archive's digest, or a path on the server.
    func resolveImage() async -> String {
        if image.hasPrefix("sha256:") { return image }
        if image.hasPrefix("server:") { return String(image.dropFirst("server:".count)) }
        let (path, tag) = ImageStore.split(image)
        guard tag == nil else {
            fail("\(image): a tag inside an uploaded archive is not supported; upload an archive with one image")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            fail("\(image): no such file here (a path on the server's host is written server:PATH)")
        }
        let answer = await server.send(.POST, "/images", body: [UInt8](data), contentType: "application/octet-stream")
        guard let digest = (server.expectJSON(answer) as? [String: Any])?["digest"] as? String else {
            fail("the server's answer to the upload has no digest")
        }
        return digest
    }
}

struct Invoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Invoke an event or job function on the server: prints its return value (--async: the request id).")

    @Argument var name: String
    @Option(help: "The event: JSON, or @FILE.") var event = "{}"
    @Flag(help: "Queue the event and return at once (X-Scf-Invocation-Type: Event).") var async = false
    @Flag(help: "Print the invocation's log to stderr (X-Scf-Log-Type: Tail).") var log = false
    @Flag(help: "Print the whole result object as JSON.") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        var headers = [("X-Scf-Invocation-Type", async ? "Event" : "RequestResponse")]
        if log { headers.append(("X-Scf-Log-Type", "Tail")) }
        let answer = await server.send(.POST, "/functions/\(name)/invocations", body: readEvent(event), headers: headers)
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any] ?? [:]
        if object["Error"] != nil { _ = server.expectJSON(answer) }
        if json || async {
            printJSON(object)
        } else if let ret = object["RetMsg"] as? String, !ret.isEmpty {
            print(ret)
        }
        if log, let text = object["Log"] as? String { FileHandle.standardError.write(Data((text + "\n").utf8)) }
        if let code = object["InvokeResult"] as? Int, code != 0 {
            fail("\(code): \(object["ErrMsg"] as? String ?? "")")
        }
    }
}

struct ResultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "result", abstract: "The state, tries and result of an async invocation.")
    @Argument var name: String
    @Argument var requestID: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        printJSON(server.expectJSON(await server.send(.GET, "/functions/\(name)/invocations/\(requestID)")))
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A function's invocation logs (START … REPORT, Init Report).")
    @Argument var name: String
    @Option(help: "Only this invocation's log (every try of it).") var requestID: String?
    @Option(help: "The latest N invocations.") var limit = 20
    @Flag(help: "Keep printing new logs as they come.") var follow = false
    @Flag(help: "Print the entries as JSON (one array; with --follow, one per batch).") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        var seen = Set<String>()
        repeat {
            var path = "/functions/\(name)/logs?limit=\(limit)"
            if let requestID { path += "&requestId=\(requestID)" }
            let entries = server.expectJSON(await server.send(.GET, path)) as? [[String: Any]] ?? []
            var fresh: [[String: Any]] = []
            for entry in entries {
                let key = "\(entry["requestID"] ?? "") \(entry["at"] ?? "")"
                if seen.insert(key).inserted { fresh.append(entry) }
            }
            if json {
                if !fresh.isEmpty || !follow { printJSON(fresh) }
            } else {
                // Each line with its entry's time (UTC, ms), as SCF's log console shows them.
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                for entry in fresh {
                    guard let text = entry["text"] as? String else { continue }
                    let at = (entry["at"] as? Double).map { formatter.string(from: Date(timeIntervalSince1970: $0)) } ?? "-"
                    say(
                        text.split(separator: "\n", omittingEmptySubsequences: false).map { "\(at)  \($0)" }.joined(
                            separator: "\n"))
                }
            }
            if follow { try await Task.sleep(for: .seconds(1)) }
        } while follow
    }
}

struct PS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "The server's live instances.")
    @Flag(help: "Print them as JSON: function name → its instances.") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let answer = server.expectJSON(await server.send(.GET, "/instances"))
        if json { return printJSON(answer) }
        let byFunction = answer as? [String: [[String: Any]]] ?? [:]
        print("FUNCTION".padding(24) + "INSTANCE".padding(22) + "STATE".padding(7) + "PID".padding(9) + "PROV  MEMORY")
        for name in byFunction.keys.sorted() {
            for i in byFunction[name]! {
                let memory = (i["memoryBytes"] as? Int).map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "-"
                let state = (i["frozen"] as? Bool) == true ? "frozen" : "\(i["state"] ?? "")"
                print(
                    name.padding(24) + "\(i["id"] ?? "")".padding(22) + state.padding(7)
                        + "\(i["pid"] ?? "")".padding(9) + ((i["provisioned"] as? Bool) == true ? "yes" : "no").padding(6)
                        + memory)
            }
        }
    }
}

struct Functions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The functions deployed on the server.")
    @Flag(help: "Print them as JSON: one object per function (its spec, instances and queue).") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let names = server.expectJSON(await server.send(.GET, "/functions")) as? [String] ?? []
        if json {
            var all: [Any] = []
            for name in names { all.append(server.expectJSON(await server.send(.GET, "/functions/\(name)"))) }
            return printJSON(all)
        }
        print("NAME".padding(24) + "TYPE".padding(7) + "INSTANCES  QUEUED  IMAGE")
        for name in names {
            guard let info = server.expectJSON(await server.send(.GET, "/functions/\(name)")) as? [String: Any] else { continue }
            let spec = info["spec"] as? [String: Any] ?? [:]
            let events = info["events"] as? [String: Int] ?? [:]
            let instances = (info["instances"] as? [Any])?.count ?? 0
            print(
                name.padding(24) + "\(spec["type"] ?? "web")".padding(7) + "\(instances)".padding(11)
                    + "\(events["queued", default: 0])".padding(8) + "\(spec["image"] ?? "")")
        }
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Delete a function: its instances stop, its queued events go to the dead letters.")
    @Argument var name: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        _ = server.expectJSON(await server.send(.DELETE, "/functions/\(name)"))
        print("deleted \(name)")
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
