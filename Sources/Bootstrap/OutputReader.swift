import Foundation
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The thread that reads every instance's output pipes: one epoll set, level-triggered; a readable pipe is
/// drained into its collector. Cheap to keep for hundreds of idle instances (two descriptors each, no thread
/// or event-loop channel per pipe).
final class OutputReader: Sendable {
    static let shared = OutputReader()

    private let epoll: Epoll
    /// Watched pipes by key (the key, not the descriptor, travels in epoll's events: a descriptor number can
    /// be reused as soon as it is closed).
    private let watched = Mutex<(byKey: [UInt64: (OutputCollector, Int)], keyOfFD: [CInt: UInt64], next: UInt64)>(
        ([:], [:], 1))

    private init() {
        do { epoll = try Epoll() } catch { fatalError("\(error)") }
        let thread = Thread { [self] in run() }
        thread.name = "faasbox-output"
        thread.start()
    }

    func watch(_ fd: CInt, collector: OutputCollector, pipe: Int) throws(SystemCallError) {
        let key = watched.withLock { w in
            let key = w.next
            w.next += 1
            w.byKey[key] = (collector, pipe)
            w.keyOfFD[fd] = key
            return key
        }
        do { try epoll.add(fd, token: key) } catch {
            unwatch(fd)
            throw error
        }
    }

    /// Stops watching `fd` (before it is closed).
    func unwatch(_ fd: CInt) {
        let known = watched.withLock { w -> Bool in
            guard let key = w.keyOfFD.removeValue(forKey: fd) else { return false }
            w.byKey[key] = nil
            return true
        }
        if known { epoll.remove(fd) }
    }

    private func run() {
        while true {
            _ = try? epoll.wait { key in
                guard let (collector, pipe) = watched.withLock({ $0.byKey[key] }) else { return }
                collector.drain(pipe: pipe)
            }
        }
    }
}
