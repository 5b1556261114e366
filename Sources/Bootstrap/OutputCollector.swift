import NIOCore
import NIOPosix
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Collects a sandboxed program's stdout and stderr as lines, on NIO's event loops (no thread per pipe). Each
/// line is attributed to the invocation it belongs to: the latest one begun and not yet ended, or else the last
/// one that ended (output that trails a response belongs to it); nil before the first (the init's output).
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

    private let lines = Mutex<[Line]>([])
    private let attribution = Mutex(Attribution())
    /// The pipes' read ends (for FIONREAD) and their channels, once attached.
    private let pipes = Mutex<[(fd: CInt, channel: Channel)]>([])
    private let maxLines: Int
    private let closedStreams = Atomic<Int>(0)

    /// `maxLines`: at most this many lines are kept; past it the oldest go.
    public init(maxLines: Int = 10_000) { self.maxLines = max(1, maxLines) }

    /// Starts reading both pipes; takes ownership of duplicates of their descriptors.
    func attach(stdout: OwnedFileDescriptor, stderr: OwnedFileDescriptor, group: EventLoopGroup) async throws {
        let loop = group.next()  // both pipes on one loop: `end` waits for at most one
        for (fd, stream) in [(stdout, Line.Stream.stdout), (stderr, .stderr)] {
            let dup = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
            if dup < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
            let channel = try await NIOPipeBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.pipeline.addHandler(LineHandler(collector: self, stream: stream))
                }
                .takingOwnershipOfDescriptor(input: dup).get()
            pipes.withLock { $0.append((fd.rawValue, channel)) }
        }
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

    /// An invocation ends. What the function wrote before it answered is read first (waiting up to ~5 ms for
    /// the pipes to drain), so that it is attributed to this invocation and not to the next one.
    func end(_ requestID: String) async {
        let pipes = self.pipes.withLock { $0 }
        for pipe in pipes {
            for _ in 0..<50 {
                var unread: CInt = 0
                if ioctl(pipe.fd, UInt(FIONREAD), &unread) != 0 || unread == 0 { break }
                try? await Task.sleep(for: .microseconds(100))
            }
            // A read taken from the pipe is handled whole on the channel's event loop: let it finish (nothing to
            // wait for when this task runs on that loop now).
            if !pipe.channel.eventLoop.inEventLoop { try? await pipe.channel.eventLoop.submit {}.get() }
        }
        attribution.withLock { $0.active.removeAll { $0 == requestID } }
    }

    /// The lines of one invocation (with `includingInit`, the instance's init output before them too).
    public func lines(for requestID: String, includingInit: Bool = false) -> [Line] {
        snapshot.filter { $0.requestID == requestID || (includingInit && $0.requestID == nil) }
    }

    func streamClosed() { closedStreams.add(1, ordering: .relaxed) }

    /// Everything collected so far.
    public var snapshot: [Line] { lines.withLock { $0 } }

    /// The lines as text, one per line.
    public var text: String { snapshot.map(\.text).joined(separator: "\n") }

    /// Waits (up to `timeout`) until both pipes reached EOF, i.e. the instance is gone.
    public func waitForEOF(timeout: Duration = .milliseconds(500)) async {
        let deadline = ContinuousClock.now + timeout
        while closedStreams.load(ordering: .relaxed) < 2 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

private final class LineHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let collector: OutputCollector
    let stream: OutputCollector.Line.Stream
    var pending: [UInt8] = []

    init(collector: OutputCollector, stream: OutputCollector.Line.Stream) {
        self.collector = collector
        self.stream = stream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        pending.append(contentsOf: buffer.readableBytesView)
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            collector.append(.init(stream: stream, text: String(decoding: pending[..<newline], as: UTF8.self)))
            pending.removeSubrange(...newline)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !pending.isEmpty { collector.append(.init(stream: stream, text: String(decoding: pending, as: UTF8.self))) }
        pending = []
        collector.streamClosed()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
