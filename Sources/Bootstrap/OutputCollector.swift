import NIOCore
import NIOPosix
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Collects a sandboxed program's stdout and stderr as lines, on NIO's event loops (no thread per pipe).
public final class OutputCollector: Sendable {
    public struct Line: Sendable {
        public enum Stream: Sendable { case stdout, stderr }
        public let stream: Stream
        public let text: String
    }

    private let lines = Mutex<[Line]>([])
    private let maxLines: Int
    private let closedStreams = Atomic<Int>(0)

    public init(maxLines: Int = 10_000) { self.maxLines = maxLines }

    /// Starts reading both pipes; takes ownership of duplicates of their descriptors.
    func attach(stdout: OwnedFileDescriptor, stderr: OwnedFileDescriptor, group: EventLoopGroup) async throws {
        for (fd, stream) in [(stdout, Line.Stream.stdout), (stderr, .stderr)] {
            let dup = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
            if dup < 0 { throw SystemCallError.current("fcntl(F_DUPFD_CLOEXEC)") }
            _ = try await NIOPipeBootstrap(group: group)
                .channelInitializer { channel in
                    channel.pipeline.addHandler(LineHandler(collector: self, stream: stream))
                }
                .takingOwnershipOfDescriptor(input: dup).get()
        }
    }

    func append(_ line: Line) {
        lines.withLock { if $0.count < maxLines { $0.append(line) } }
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
