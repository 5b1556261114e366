import Crypto

/// A content digest such as `sha256:e3b0…`, validated on creation.
public struct Digest: Sendable, Hashable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256, sha512
        var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    public let hex: String

    public init(parsing string: String) throws(ImageError) {
        guard let colon = string.firstIndex(of: ":") else { throw .invalidDigest(string) }
        guard let algorithm = Algorithm(rawValue: String(string[..<colon])) else {
            throw .unsupportedDigestAlgorithm(string)
        }
        let hex = String(string[string.index(after: colon)...])
        guard hex.utf8.count == algorithm.hexLength,
            hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { throw .invalidDigest(string) }
        self.algorithm = algorithm
        self.hex = hex
    }

    init(algorithm: Algorithm, hex: String) {
        self.algorithm = algorithm
        self.hex = hex
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }
}

/// A running hash of one algorithm, fed as bytes stream by.
struct Hasher {
    private var sha256: SHA256?
    private var sha512: SHA512?
    let algorithm: Digest.Algorithm

    init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256: sha256 = SHA256()
        case .sha512: sha512 = SHA512()
        }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch algorithm {
        case .sha256: sha256!.update(bufferPointer: bytes)
        case .sha512: sha512!.update(bufferPointer: bytes)
        }
    }

    func finalize() -> Digest {
        let hex: String
        switch algorithm {
        case .sha256: hex = sha256!.finalize().map { String(format02x($0)) }.joined()
        case .sha512: hex = sha512!.finalize().map { String(format02x($0)) }.joined()
        }
        return Digest(algorithm: algorithm, hex: hex)
    }

    static func digest(of bytes: [UInt8], _ algorithm: Digest.Algorithm) -> Digest {
        var h = Hasher(algorithm)
        bytes.withUnsafeBytes { h.update($0) }
        return h.finalize()
    }
}

private let hexDigits = Array("0123456789abcdef")
private func format02x(_ b: UInt8) -> String { String([hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]]) }
