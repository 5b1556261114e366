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

    /// A pipe's read end (non-blocking) and the part of a line read so far; nil once it reached EOF.
    private struct Pipe {
        let stream: Line.Stream
        var fd: CInt?
        var pending: [UInt8] = []
    }

    private let lines = Mutex<[Line]>([])
    private let attribution = Mutex(Attribution())
    /// Reads of the pipes happen under this lock (by the reader thread or by `end`).
    private let pipes = Mutex<[Pipe]>([])
    private let maxLines: Int
    private let closedStreams = Atomic<Int>(0)

    /// `maxLines`: at most this many lines are kept; past it the oldest go.
    public init(maxLines: Int = 10_000) { self.maxLines = max(1, maxLines) }

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

    /// Reads what pipe `index` holds now (up to EOF, which closes it); called by the reader thread when the
    /// pipe is readable, and by `end`.
    func drain(pipe index: Int) {
        pipes.withLock { pipes in
            guard let fd = pipes[index].fd else { return }
            // Not a zero-filled array: `end` calls this twice per invocation, and the pipes are usually empty.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { chunk in
                drain(fd, into: &pipes[index], chunk)
            }
        }
    }

    private func drain(_ fd: CInt, into pipe: inout Pipe, _ chunk: UnsafeMutableBufferPointer<UInt8>) {
        while true {
            let n = Syscall.retrying { read(fd, chunk.baseAddress, chunk.count) }
            if n > 0 {
                split(UnsafeBufferPointer(rebasing: chunk[..<n]), into: &pipe)
                if n < chunk.count { return }  // a pipe gives all it holds at once: it is empty now
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {  // EOF (or an error that ends the stream)
                if !pipe.pending.isEmpty {
                    append(Line(stream: pipe.stream, text: String(decoding: pipe.pending, as: UTF8.self)))
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
            let text: String
            if pipe.pending.isEmpty {
                text = String(decoding: bytes[start..<newline], as: UTF8.self)
            } else {
                pipe.pending.append(contentsOf: bytes[start..<newline])
                text = String(decoding: pipe.pending, as: UTF8.self)
                pipe.pending = []
            }
            append(Line(stream: pipe.stream, text: text))
            start = newline + 1
        }
        pipe.pending.append(contentsOf: bytes[start...])
    }

    func append(_ line: Line) {
        var line = line
        line.requestID = attribution.withLock { $0.active.last ?? $0.last }
        lines.withLock {
            $0.append(line)
            // Keep the newest lines: drop a tenth of the oldest at a time, so appending stays cheap.
            if $0.count > maxLines { $0.removeFirst($0.count - maxLines + maxLines / 10) }
        }
    }

    /// Removes and returns the lines of one invocation (with `includingInit`, the init output too): a long-lived
    /// instance's buffer then holds only what no one has taken yet.
    public func take(for requestID: String, includingInit: Bool = false) -> [Line] {
        let belongs = { (line: Line) in line.requestID == requestID || (includingInit && line.requestID == nil) }
        return lines.withLock { all in
            let taken = all.filter(belongs)
            all.removeAll(where: belongs)
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
        let count = pipes.withLock { $0.count }
        for index in 0..<count { drain(pipe: index) }
        attribution.withLock { $0.active.removeAll { $0 == requestID } }
    }

    /// The lines of one invocation (with `includingInit`, the instance's init output before them too).
    public func lines(for requestID: String, includingInit: Bool = false) -> [Line] {
        snapshot.filter { $0.requestID == requestID || (includingInit && $0.requestID == nil) }
    }

    /// Everything collected so far.
    public var snapshot: [Line] { lines.withLock { $0 } }

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
