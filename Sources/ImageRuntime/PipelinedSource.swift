import Foundation

/// Runs a source on a thread of its own and hands its chunks over through a few buffers, so decompressing
/// and hashing a layer overlaps with writing its files (as `tar -z` overlaps with its gzip process).
final class PipelinedSource: ReadSource, @unchecked Sendable {  // all mutable state is guarded by `condition`
    private let inner: ReadSource
    private let condition = NSCondition()
    private var ready: [(buffer: UnsafeMutableRawBufferPointer, count: Int)] = []
    private var free: [UnsafeMutableRawBufferPointer]
    private var lent: UnsafeMutableRawBufferPointer?
    private var finished = false
    private var failure: ImageError?
    private var stopping = false
    private var producerDone = false
    private let after: () throws(ImageError) -> Void

    /// `after` runs on the producer thread once `inner` is at its end (e.g. draining what is left of the blob).
    init(_ inner: ReadSource, buffers: Int = 8, bufferSize: Int = 1 << 20, after: @escaping () throws(ImageError) -> Void = {}) {
        self.inner = inner
        self.after = after
        free = (0..<buffers).map { _ in .allocate(byteCount: bufferSize, alignment: 64) }
        super.init()
        let thread = Thread { [self] in produce() }
        thread.name = "faasbox-decompress"
        thread.start()
    }

    deinit {
        stop()
        for b in free { b.deallocate() }
        for r in ready { r.buffer.deallocate() }
        lent?.deallocate()
    }

    private func produce() {
        var outcome: ImageError?
        do throws(ImageError) {
            while true {
                let chunk = try inner.read()
                if chunk.isEmpty { break }
                var offset = 0
                while offset < chunk.count {
                    condition.lock()
                    while free.isEmpty && !stopping { condition.wait() }
                    if stopping {
                        condition.unlock()
                        throw ImageError.corruptArchive(what: "layer", reason: "unpacking stopped")
                    }
                    let buffer = free.removeLast()
                    condition.unlock()
                    let n = min(buffer.count, chunk.count - offset)
                    buffer.baseAddress!.copyMemory(from: chunk.baseAddress! + offset, byteCount: n)
                    offset += n
                    condition.lock()
                    ready.append((buffer, n))
                    condition.signal()
                    condition.unlock()
                }
            }
            try after()
        } catch {
            outcome = error
        }
        condition.lock()
        if let outcome { failure = outcome }
        finished = true
        producerDone = true
        condition.broadcast()
        condition.unlock()
    }

    override func read() throws(ImageError) -> UnsafeRawBufferPointer {
        condition.lock()
        defer { condition.unlock() }
        if let previous = lent {
            free.append(previous)
            lent = nil
            condition.signal()
        }
        while ready.isEmpty && !finished { condition.wait() }
        if !ready.isEmpty {
            let next = ready.removeFirst()
            lent = next.buffer
            return UnsafeRawBufferPointer(rebasing: next.buffer[0..<next.count])
        }
        if let failure { throw failure }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Reads and discards the rest (the tar end marker can come before the stream's end), then reports the
    /// producer's error, if any.
    func drain() throws(ImageError) {
        while try !read().isEmpty {}
    }

    /// Stops the producer and waits for it. The owner must call this when it is done with the source (the
    /// producer thread holds the source, so it cannot wait for deinit); calling it again does nothing.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !producerDone { condition.wait() }
        condition.unlock()
    }
}
