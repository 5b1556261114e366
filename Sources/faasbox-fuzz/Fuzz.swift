// Fuzz target for ImageRuntime's parsers: libFuzzer drives it when built by scripts/fuzz
// (-sanitize=fuzzer -DFUZZING); a normal build makes a replayer that runs the inputs given as files.
import Foundation
import ImageRuntime

let scratch: String = {
    let dir = NSTemporaryDirectory() + "faasbox-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

func fuzzOne(_ bytes: [UInt8]) {
    guard let selector = bytes.first else { return }
    let rest = Array(bytes.dropFirst())
    switch selector % 3 {
    case 0: FuzzEntryPoints.parseMetadata(rest)
    case 1: FuzzEntryPoints.unpackLayer(rest, scratch: scratch)
    default: FuzzEntryPoints.pullArchive(rest, scratch: scratch)
    }
}

#if FUZZING
    // libFuzzer's own main is linked whole and SwiftPM aliases main to this module's: both lead here
    // (scripts/fuzz links with --allow-multiple-definition).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        fuzzOne(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }

    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    @main
    struct Fuzz {
        static func main() {
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzInput(data, size) })
        }
    }
#else
    @main
    struct Replay {
        static func main() throws {
            for path in CommandLine.arguments.dropFirst() {
                fuzzOne([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
                print("ok \(path)")
            }
        }
    }
#endif
