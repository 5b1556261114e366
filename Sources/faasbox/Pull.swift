import ArgumentParser
import Bootstrap
import ImageRuntime

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify an image and unpack its layers into the store; prints PullCode and what was reused.")

    @Argument(help: "An OCI image layout: an oci-archive tarball or a directory (PATH or PATH:tag).")
    var image: String

    @OptionGroup var state: StateOptions

    func run() async throws {
        requireRoot("pull")
        let clock = ContinuousClock()
        let begin = clock.now
        do {
            let store = state.openStore()
            let pulled = try await store.pull(image)
            let elapsed = clock.now - begin
            print("\(image): \(pulled.manifestDigest)")
            print(
                "PullCode: \(LogFormat.format1(elapsed.milliseconds))ms layers: \(pulled.layers.count) "
                    + "reused: \(pulled.stats.layersReused) unpacked: \(pulled.stats.layersUnpacked) "
                    + "bytes: \(pulled.stats.bytesUnpacked) entries: \(pulled.stats.entriesUnpacked)")
        } catch {
            fail(error.description)
        }
    }
}
