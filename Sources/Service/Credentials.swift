import Foundation
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The keys that may sign requests to the service's TCP listener: `credentials.json` in the state dir, mode
/// 0600, written atomically. A SecretKey is never logged and never part of an error; `list` shows ids only.
public final class CredentialStore: Sendable {
    public struct Credential: Codable, Sendable {
        public let SecretId: String
        public let SecretKey: String
        public let CreatedAt: Date
    }

    public let path: String
    /// The file as last read, keyed by its identity (device, inode, size, mtime), so a request costs one stat.
    private let cache = Mutex<(key: String, credentials: [Credential])?>(nil)

    public init(stateDir: String) { path = "\(stateDir)/credentials.json" }

    /// Every credential, oldest first. A missing file is none.
    public func all() throws(SystemCallError) -> [Credential] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { return [] }
            throw .current("stat", path: path)
        }
        let key = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        if let cached = cache.withLock({ $0 }), cached.key == key { return cached.credentials }
        let bytes = try FileSystem.read(path, limit: 4 << 20)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let credentials = (try? decoder.decode([Credential].self, from: Data(bytes))) ?? []
        cache.withLock { $0 = (key, credentials) }
        return credentials
    }

    /// The SecretKey of `secretID`, or nil.
    public func secretKey(for secretID: String) -> String? {
        (try? all())?.first { $0.SecretId == secretID }?.SecretKey
    }

    /// Makes a new key pair and saves it: `AKID` and 32 random letters and digits; a 32-character key.
    public func create() throws(SystemCallError) -> Credential {
        let credential = Credential(
            SecretId: "AKID" + Self.randomString(32), SecretKey: Self.randomString(32), CreatedAt: Date())
        try save(try all() + [credential])
        return credential
    }

    /// Removes `secretID`; false if there was no such key.
    public func delete(_ secretID: String) throws(SystemCallError) -> Bool {
        let before = try all()
        let after = before.filter { $0.SecretId != secretID }
        if after.count == before.count { return false }
        try save(after)
        return true
    }

    private func save(_ credentials: [Credential]) throws(SystemCallError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let bytes = (try? encoder.encode(credentials)).map { [UInt8]($0) } ?? []
        try FileSystem.writeAtomically(path, bytes, mode: 0o600)
        cache.withLock { $0 = nil }
    }

    /// Letters and digits from the system's CSPRNG (getrandom), without modulo bias.
    static func randomString(_ count: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }
}
