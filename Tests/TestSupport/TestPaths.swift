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
        "\(packageRoot)/build/images/\(name).tar"
    }

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
