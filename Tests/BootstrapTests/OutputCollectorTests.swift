import Testing

@testable import Bootstrap

/// The per-instance output buffer of a long-lived instance (faasbox serve keeps instances warm for many calls).
@Suite struct OutputCollectorTests {
    private func line(_ text: String) -> OutputCollector.Line { .init(stream: .stdout, text: text) }

    @Test func takingAnInvocationsLinesRemovesThemAndLeavesTheOthers() async {
        let output = OutputCollector()
        output.append(line("init"))
        output.begin("a")
        output.append(line("a1"))
        output.append(line("a2"))
        await output.end("a")
        output.begin("b")
        output.append(line("b1"))
        await output.end("b")
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
}
