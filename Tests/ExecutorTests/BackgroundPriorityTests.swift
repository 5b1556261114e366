import Foundation
import Glibc
import Synchronization
import SystemSupport
import Testing

/// The invocation-log writes run at nice 19 (StateDatabase.saveLogs); the thread gets its own value back.
struct BackgroundPriorityTests {
    struct Stop: Error {}

    private static func nice() -> Int32 { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }

    @Test func theBodyRunsAtNice19AndThePreviousValueComesBack() throws {
        // A thread of its own: the nice value is per thread on Linux, and this one is the test's to change.
        let seen = try onNewThread {
            let before = Self.nice()
            let inside = withBackgroundPriority { Self.nice() }
            let after = Self.nice()
            var afterThrow: Int32 = -100
            do { try withBackgroundPriority { () throws(Stop) in throw Stop() } } catch { afterThrow = Self.nice() }
            return [before, inside, after, afterThrow]
        }
        try #require(geteuid() == 0, "the restore needs CAP_SYS_NICE; CI runs as root")
        #expect(seen == [seen[0], 19, seen[0], seen[0]])
        #expect(seen[0] < 19)
    }

    /// Runs `body` on a new thread and returns what it returned.
    private func onNewThread(_ body: @escaping @Sendable () -> [Int32]) throws -> [Int32] {
        let result = Mutex<[Int32]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.withLock { $0 = body() }
            done.signal()
        }.start()
        done.wait()
        return result.withLock { $0 }
    }
}
