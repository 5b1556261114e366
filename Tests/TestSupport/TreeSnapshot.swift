import Crypto
import Foundation

/// A comparable description of a directory tree: per path its type, mode, owner, and content or target.
public struct TreeSnapshot: Equatable, CustomStringConvertible {
    public var entries: [String: String]

    public init(_ root: String) throws {
        entries = [:]
        try walk(root, relative: "")
    }

    private mutating func walk(_ root: String, relative: String) throws {
        let path = relative.isEmpty ? root : "\(root)/\(relative)"
        var st = stat()
        guard lstat(path, &st) == 0 else { throw CocoaError(.fileReadNoSuchFile) }
        let type = st.st_mode & S_IFMT
        var detail = String(format: "mode=%o uid=%d gid=%d", st.st_mode & 0o7777, st.st_uid, st.st_gid)
        switch type {
        case S_IFDIR:
            detail = "dir " + detail
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                try walk(root, relative: relative.isEmpty ? name : "\(relative)/\(name)")
            }
        case S_IFREG:
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            detail = "file " + detail + " sha256=" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        case S_IFLNK:
            detail =
                "symlink -> " + (try FileManager.default.destinationOfSymbolicLink(atPath: path))
                + String(format: " uid=%d gid=%d", st.st_uid, st.st_gid)
        case S_IFCHR, S_IFBLK: detail = "device \(st.st_rdev) " + detail
        case S_IFIFO: detail = "fifo " + detail
        default: detail = "other " + detail
        }
        entries[relative.isEmpty ? "." : relative] = detail
    }

    /// The differences to `other`, one line each (empty when equal).
    public func differences(to other: TreeSnapshot) -> [String] {
        let keys = Set(entries.keys).union(other.entries.keys).sorted()
        return keys.compactMap { key in
            entries[key] == other.entries[key] ? nil : "\(key): \(entries[key] ?? "absent") vs \(other.entries[key] ?? "absent")"
        }
    }

    public var description: String { "\(entries.count) entries" }
}

/// Runs a command and fails the test's setup if it fails.
@discardableResult
public func shell(_ arguments: [String], in directory: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus != 0 {
        throw ShellError(command: arguments.joined(separator: " "), status: process.terminationStatus, output: output)
    }
    return output
}

public struct ShellError: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String { "`\(command)` exited \(status): \(output)" }
}
