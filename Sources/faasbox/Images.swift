import ArgumentParser
import Foundation
import ImageRuntime

struct Images: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the images in the store.")
    @Flag(help: "Print them as JSON.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let store = state.openStore()
        if json {
            let formatter = ISO8601DateFormatter()
            let all: [[String: Any]] = store.images().map { image in
                [
                    "digest": image.manifestDigest, "source": image.source, "tag": image.tag.map { $0 as Any } ?? NSNull(),
                    "layers": image.diffIDs, "pulledAt": formatter.string(from: image.pulledAt),
                ]
            }
            let data = (try? JSONSerialization.data(withJSONObject: all, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            return print(String(decoding: data, as: UTF8.self))
        }
        print("DIGEST".padding(toLength: 20, withPad: " ", startingAt: 0) + "LAYERS  PULLED                SOURCE")
        let formatter = ISO8601DateFormatter()
        for image in store.images() {
            let digest = String(image.manifestDigest.dropFirst(7).prefix(12))
            let source = image.source + (image.tag.map { ":\($0)" } ?? "")
            print(
                digest.padding(toLength: 20, withPad: " ", startingAt: 0)
                    + "\(image.diffIDs.count)".padding(toLength: 8, withPad: " ", startingAt: 0)
                    + formatter.string(from: image.pulledAt).padding(toLength: 22, withPad: " ", startingAt: 0) + source)
        }
    }
}

struct Rmi: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forget images (by digest prefix or source path); `faasbox gc` then frees their layers.")
    @Argument(help: "Manifest digest (prefix) or the path the image was pulled from.") var images: [String]
    @OptionGroup var state: StateOptions

    func run() async throws {
        do {
            let store = state.openStore()
            for image in images { for digest in try store.removeImage(image) { print("removed \(digest)") } }
        } catch { fail(error.description) }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove layers and blobs that no image in the store references.")
    @OptionGroup var state: StateOptions

    func run() async throws {
        let removed = state.openStore().collectGarbage()
        print(
            "removed \(removed.layers) layers, \(removed.blobs) blobs: "
                + String(format: "%.1f MB freed", Double(removed.bytes) / 1e6))
    }
}
