import SystemSupport
import Testing

@testable import Bootstrap

#if canImport(Glibc)
    import Glibc
#endif

/// The per-instance output buffer of a long-lived instance (faasbox serve keeps instances warm for many calls).
@Suite struct OutputCollectorTests {
    private func line(_ text: String) -> OutputCollector.Line { .init(stream: .stdout, text: text) }

    @Test func takingAnInvocationsLinesRemovesThemAndLeavesTheOthers() async {
        let output = OutputCollector()
        output.append(line("init"))
        output.begin("a")
        output.append(line("a1"))
        output.append(line("a2"))
        output.end("a")
        output.begin("b")
        output.append(line("b1"))
        output.end("b")
        #expect(output.take(for: "a", includingInit: true).map(\.text) == ["init", "a1", "a2"])
        #expect(output.lines(for: "a").isEmpty)
        #expect(output.snapshot.map(\.text) == ["b1"], "the other invocation's lines stay")
    }

    @Test func pastTheLimitTheOldestLinesGoAndNewOnesAreKept() {
        let output = OutputCollector(maxLines: 10)
        for i in 1...25 { output.append(line("line \(i)")) }
        let kept = output.snapshot.map(\.text)
        #expect(kept.count <= 10 && kept.count >= 9)
        #expect(kept.last == "line 25", "the newest line is never dropped")
        #expect(!kept.contains("line 1"))
    }

    @Test func pastTheByteBoundTheOldestLinesGoAndTheCountFollows() {
        let output = OutputCollector(maxBytes: 10_000)
        for i in 1...100 { output.append(line(String(format: "%04d", i) + String(repeating: ".", count: 996))) }
        let kept = output.snapshot.map(\.text)
        #expect(output.keptBytes <= 10_000 && output.keptBytes == kept.count * 1000)
        #expect(kept.count >= 9, "a tenth goes at a time: \(kept.count)")
        #expect(kept.last?.hasPrefix("0100") == true, "the newest line is kept")
        _ = output.take(for: "none", includingInit: true)
        #expect(output.keptBytes == 0, "taking lines gives their bytes back")
    }
}

/// Real pipes, read by the shared reader thread: what a function writes before it answers belongs to that
/// invocation, with no waiting — `end` reads what the reader thread has not yet.
@Suite struct OutputCollectorPipeTests {
    @Test func outputWrittenBeforeTheAnswerIsTheInvocationsAtOnce() throws {
        let out = try OwnedFileDescriptor.pipe()
        let err = try OwnedFileDescriptor.pipe()
        let output = OutputCollector()
        try output.attach(stdout: out.read, stderr: err.read)
        for i in 0..<300 {
            output.begin("r\(i)")
            try send(out.write, "out \(i)\npart")
            try send(out.write, " \(i)\n")
            if i % 3 == 0 { try send(err.write, "err \(i)\n") }
            output.end("r\(i)")
            let lines = output.take(for: "r\(i)")
            #expect(lines.filter { $0.stream == .stdout }.map(\.text) == ["out \(i)", "part \(i)"], "call \(i)")
            #expect(lines.filter { $0.stream == .stderr }.map(\.text) == (i % 3 == 0 ? ["err \(i)"] : []), "call \(i)")
        }
    }

    /// A line longer than the bound is cut there, with a marker; the rest of it (however long, over many
    /// reads) is dropped and the next line is whole again.
    @Test func aLongLineIsCutAndTheRestOfItDropped() async throws {
        let out = try OwnedFileDescriptor.pipe()
        let err = try OwnedFileDescriptor.pipe()
        let output = OutputCollector(maxLineBytes: 1000)
        try output.attach(stdout: out.read, stderr: err.read)
        try send(out.write, "short\n" + String(repeating: "x", count: 600))
        for _ in 0..<50 { try send(out.write, String(repeating: "y", count: 4000)) }
        try send(out.write, "tail of the long one\nnext\n" + String(repeating: "z", count: 1500) + "\nlast")
        out.write.close()
        err.write.close()
        await output.waitForEOF(timeout: .seconds(5))
        let lines = output.snapshot.map(\.text)
        let marker = OutputCollector.cutMarker(1000)
        #expect(lines.count == 5, "\(lines.map { $0.prefix(20) })")
        #expect(lines.first == "short")
        #expect(lines.dropFirst().first == String(repeating: "x", count: 600) + String(repeating: "y", count: 400) + marker)
        #expect(lines.dropFirst(2).first == "next")
        #expect(lines.dropFirst(3).first == String(repeating: "z", count: 1000) + marker)
        #expect(lines.last == "last")
        #expect(output.keptBytes == lines.reduce(0) { $0 + $1.utf8.count })
    }

    @Test func theLastUnterminatedLineComesAtEOF() async throws {
        let out = try OwnedFileDescriptor.pipe()
        let err = try OwnedFileDescriptor.pipe()
        let output = OutputCollector()
        try output.attach(stdout: out.read, stderr: err.read)
        try send(out.write, "one\ntwo")
        out.write.close()
        err.write.close()
        await output.waitForEOF(timeout: .seconds(5))
        #expect(output.snapshot.map(\.text) == ["one", "two"])
    }
}

private func send(_ fd: OwnedFileDescriptor, _ text: String) throws {
    let bytes = Array(text.utf8)
    let n = bytes.withUnsafeBytes { write(fd.rawValue, $0.baseAddress, $0.count) }
    if n != bytes.count { throw SystemCallError.current("write") }
}
