import Foundation
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Collects a sandboxed program's stdout and stderr as lines. Each line is attributed to the invocation it
/// belongs to: the latest one begun and not yet ended, or else the last one that ended (output that trails a
/// response belongs to it); nil before the first (the init's output).
///
/// The pipes are read by one shared thread (`OutputReader`, epoll) whenever the function writes, and by
/// `end` itself: both read under the collector's lock, so when an invocation ends, everything its function
/// wrote before answering is already in lines — no waiting, and no hand-off to another thread on the warm path.
public final class OutputCollector: Sendable {
    public struct Line: Sendable {
        public enum Stream: Sendable { case stdout, stderr }
        public let stream: Stream
        public let text: String
        public var requestID: String? = nil
    }

    private struct Attribution {
        var active: [String] = []
        var last: String?
    }

    /// A pipe's read end (non-blocking) and the part of a line read so far; nil once it reached EOF. Past
    /// `maxLineBytes`, the line so far is kept, cut, and the rest of it (up to its newline) is dropped.
    private struct Pipe {
        let stream: Line.Stream
        var fd: CInt?
        var pending: [UInt8] = []
        var droppingRestOfLine = false
    }

    /// The kept lines and their bytes, bounded by `maxLines` and `maxBytes`.
    private struct Kept {
        var lines: [Line] = []
        var bytes = 0
    }

    private let kept = Mutex(Kept())
    private let attribution = Mutex(Attribution())
    /// Reads of the pipes happen under this lock (by the reader thread or by `end`).
    private let pipes = Mutex<[Pipe]>([])
    private let maxLines: Int
    private let maxBytes: Int
    private let maxLineBytes: Int
    private let closedStreams = Atomic<Int>(0)

    /// At most `maxLines` lines and `maxBytes` bytes are kept (past either the oldest go); a line longer than
    /// `maxLineBytes` is cut there.
    public init(
        maxLines: Int = SCFContract.maxInstanceOutputLines, maxBytes: Int = SCFContract.maxInstanceOutputBytes,
        maxLineBytes: Int = SCFContract.maxOutputLineBytes
    ) {
        self.maxLines = max(1, maxLines)
        self.maxBytes = max(1, maxBytes)
        self.maxLineBytes = max(1, maxLineBytes)
    }

    /// A line's text: invalid UTF-8 and NUL (which would end the line in the log store's C strings) read as U+FFFD.
    static func text<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        if !bytes.contains(0) { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes.map { $0 == 0 ? 0xFF : $0 }, as: UTF8.self)
    }

    /// What takes the place of the rest of a line cut at `maxLineBytes`.
    static func cutMarker(_ limit: Int) -> String { " [faasbox: line cut at \(limit) bytes]" }

    /// Starts reading both pipes; takes ownership of duplicates of their descriptors.
    func attach(stdout: OwnedFileDescriptor, stderr: OwnedFileDescriptor) throws {
        for (fd, stream) in [(stdout, Line.Stream.stdout), (stderr, .stderr)] {
            let dup = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
            if dup < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
            _ = fcntl(dup, F_SETFL, fcntl(dup, F_GETFL) | O_NONBLOCK)
            let index = pipes.withLock { pipes in
                pipes.append(Pipe(stream: stream, fd: dup))
                return pipes.count - 1
            }
            do { try OutputReader.shared.watch(dup, collector: self, pipe: index) } catch {
                drain(pipe: index)
                throw error
            }
        }
    }

    /// Reads what pipe `index` holds now (up to EOF, which closes it), at most `budget` bytes: the shared reader
    /// thread takes 64 KB per wake-up (a function that writes without pause does not keep it from the other
    /// instances' pipes: epoll is level-triggered and comes back), `end` what the pipe held when the function
    /// answered (a pipe holds 64 KB).
    func drain(pipe index: Int, budget: Int = 64 << 10) {
        pipes.withLock { pipes in
            guard let fd = pipes[index].fd else { return }
            // Not a zero-filled array: `end` calls this twice per invocation, and the pipes are usually empty.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { chunk in
                drain(fd, into: &pipes[index], chunk, budget: budget)
            }
        }
    }

    private func drain(_ fd: CInt, into pipe: inout Pipe, _ chunk: UnsafeMutableBufferPointer<UInt8>, budget: Int) {
        var left = budget
        while left > 0 {
            let n = Syscall.retrying { read(fd, chunk.baseAddress, min(chunk.count, left)) }
            if n > 0 {
                left -= n
                split(UnsafeBufferPointer(rebasing: chunk[..<n]), into: &pipe)
                if n < chunk.count { return }  // a pipe gives all it holds at once: it is empty now
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {  // EOF (or an error that ends the stream)
                if !pipe.pending.isEmpty {
                    append(Line(stream: pipe.stream, text: Self.text(pipe.pending)))
                    pipe.pending = []
                }
                OutputReader.shared.unwatch(fd)
                close(fd)
                pipe.fd = nil
                closedStreams.add(1, ordering: .releasing)
                return
            }
        }
    }

    private func split(_ bytes: UnsafeBufferPointer<UInt8>, into pipe: inout Pipe) {
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            if pipe.droppingRestOfLine {
                pipe.droppingRestOfLine = false
            } else if pipe.pending.isEmpty && newline - start <= maxLineBytes {
                append(Line(stream: pipe.stream, text: Self.text(bytes[start..<newline])))
            } else {
                keep(bytes[start..<newline], into: &pipe)
                if !pipe.droppingRestOfLine { emitPending(&pipe) }
                pipe.droppingRestOfLine = false
            }
            start = newline + 1
        }
        if !pipe.droppingRestOfLine { keep(bytes[start...], into: &pipe) }
    }

    /// Adds to the line in progress up to `maxLineBytes`; at the bound, the line is emitted cut and the rest
    /// of it will be dropped.
    private func keep(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, into pipe: inout Pipe) {
        let room = maxLineBytes - pipe.pending.count
        if bytes.count <= room {
            pipe.pending.append(contentsOf: bytes)
            return
        }
        pipe.pending.append(contentsOf: bytes.prefix(room))
        var text = Self.text(pipe.pending)
        text += Self.cutMarker(maxLineBytes)
        pipe.pending = []
        pipe.droppingRestOfLine = true
        append(Line(stream: pipe.stream, text: text))
    }

    private func emitPending(_ pipe: inout Pipe) {
        append(Line(stream: pipe.stream, text: Self.text(pipe.pending)))
        pipe.pending = []
    }

    func append(_ line: Line) {
        var line = line
        line.requestID = attribution.withLock { $0.active.last ?? $0.last }
        kept.withLock { kept in
            kept.lines.append(line)
            kept.bytes += line.text.utf8.count
            // Keep the newest lines: drop a tenth of the oldest at a time (by count or by bytes), so that
            // appending stays cheap.
            if kept.lines.count > maxLines || kept.bytes > maxBytes {
                var drop = kept.lines.count > maxLines ? kept.lines.count - maxLines + maxLines / 10 : 0
                var dropped = kept.lines.prefix(drop).reduce(0) { $0 + $1.text.utf8.count }
                while drop < kept.lines.count - 1 && kept.bytes - dropped > maxBytes - maxBytes / 10 {
                    dropped += kept.lines[drop].text.utf8.count
                    drop += 1
                }
                kept.lines.removeFirst(drop)
                kept.bytes -= dropped
            }
        }
    }

    /// Removes and returns the lines of one invocation (with `includingInit`, the init output too): a long-lived
    /// instance's buffer then holds only what no one has taken yet.
    public func take(for requestID: String, includingInit: Bool = false) -> [Line] {
        let belongs = { (line: Line) in line.requestID == requestID || (includingInit && line.requestID == nil) }
        return kept.withLock { kept in
            let taken = kept.lines.filter(belongs)
            kept.lines.removeAll(where: belongs)
            kept.bytes -= taken.reduce(0) { $0 + $1.text.utf8.count }
            return taken
        }
    }

    /// An invocation starts: lines from now on are its own.
    func begin(_ requestID: String) {
        attribution.withLock {
            $0.active.append(requestID)
            $0.last = requestID
        }
    }

    /// An invocation ends. What the function wrote before it answered is in the pipes or already read: it is
    /// read now, so that it is attributed to this invocation and not to the next one.
    func end(_ requestID: String) {
        drainAll(budget: 256 << 10)
        attribution.withLock { $0.active.removeAll { $0 == requestID } }
    }

    /// Reads what the pipes still hold now (a job that exited: what the reader thread has not read yet).
    func readRemaining() { drainAll(budget: 1 << 20) }

    private func drainAll(budget: Int) {
        let count = pipes.withLock { $0.count }
        for index in 0..<count { drain(pipe: index, budget: budget) }
    }

    /// The lines of one invocation (with `includingInit`, the instance's init output before them too).
    public func lines(for requestID: String, includingInit: Bool = false) -> [Line] {
        snapshot.filter { $0.requestID == requestID || (includingInit && $0.requestID == nil) }
    }

    /// Everything collected so far.
    public var snapshot: [Line] { kept.withLock { $0.lines } }

    /// The bytes of the lines kept now.
    public var keptBytes: Int { kept.withLock { $0.bytes } }

    /// The lines as text, one per line.
    public var text: String { snapshot.map(\.text).joined(separator: "\n") }

    /// Waits (up to `timeout`) until both pipes reached EOF, i.e. the instance is gone.
    public func waitForEOF(timeout: Duration = .milliseconds(500)) async {
        let deadline = ContinuousClock.now + timeout
        while closedStreams.load(ordering: .acquiring) < 2 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    deinit {
        pipes.withLock { pipes in
            for case let fd? in pipes.map(\.fd) {
                OutputReader.shared.unwatch(fd)
                close(fd)
            }
        }
    }
}
