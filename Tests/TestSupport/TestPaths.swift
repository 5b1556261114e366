import Foundation
import SystemSupport

/// Paths tests share: the package root, the sample images, and fresh temporary directories.
public enum TestPaths {
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A sample image built by scripts/build-images.
    public static func sampleImage(_ name: String) -> String {
        "\(imagesDirectory)/\(name).tar"
    }

    /// Where scripts/build-images writes the sample images.
    public static var imagesDirectory: String { "\(packageRoot)/build/images" }

    /// A new empty directory under /tmp (same filesystem as the store, so overlay works).
    public static func temporaryDirectory(_ label: String = "test") -> String {
        let path = "/tmp/faasbox-\(label)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Mount points whose path contains `fragment` (from /proc/self/mountinfo).
    public static func mounts(containing fragment: String) -> [String] {
        let text = FileSystem.readProcFile("/proc/self/mountinfo")
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].contains(fragment) ? String(fields[4]) : nil
        }
    }
}

extension TestPaths {
    /// Runs a program to its end; its exit status and its stdout and stderr together. `environment` is added
    /// to this process's.
    public static func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
