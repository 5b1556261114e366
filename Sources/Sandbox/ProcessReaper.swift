import CSpawn
import Foundation
import Synchronization
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// How a sandboxed process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }

    /// pid 1 of a sandbox exits with 128+N when the program was killed by signal N.
    public var programSignal: Int32? {
        switch self {
        case .signaled(let s): return s
        case .exited(let code) where code > 128 && code < 128 + 65: return code - 128
        default: return nil
        }
    }

    static func from(code: CInt, status: CInt) -> ExitStatus {
        code == CLD_EXITED ? .exited(status) : .signaled(status)
    }
}

/// One thread that waits on every sandbox's pidfd with epoll and reaps each when it exits.
final class ProcessReaper: Sendable {
    static let shared = ProcessReaper()

    private let epoll: Epoll
    private let waiters = Mutex<[UInt64: (pidfd: CInt, done: @Sendable (ExitStatus) -> Void)]>([:])
    private let nextToken = Atomic<UInt64>(1)

    private init() {
        do { epoll = try Epoll() } catch { fatalError("\(error)") }
        let thread = Thread { [self] in self.run() }
        thread.name = "faasbox-reaper"
        thread.start()
    }

    /// Calls `done` once the process behind `pidfd` has exited and been reaped.
    func watch(pidfd: CInt, done: @escaping @Sendable (ExitStatus) -> Void) {
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        waiters.withLock { $0[token] = (pidfd, done) }
        if (try? epoll.add(pidfd, token: token)) == nil {
            // Cannot watch it: reap synchronously instead (this blocks only if it still runs).
            waiters.withLock { _ = $0.removeValue(forKey: token) }
            var code: CInt = 0
            var status: CInt = 0
            _ = fb_waitid_pidfd(pidfd, WEXITED, &code, &status)
            done(.from(code: code, status: status))
        }
    }

    private func run() {
        while true {
            _ = try? epoll.wait { token in
                guard let entry = waiters.withLock({ $0[token] }) else { return }
                var code: CInt = 0
                var status: CInt = 0
                let rc = fb_waitid_pidfd(entry.pidfd, WEXITED | WNOHANG, &code, &status)
                if rc == 1 { return }  // not yet (spurious wakeup)
                epoll.remove(entry.pidfd)
                waiters.withLock { _ = $0.removeValue(forKey: token) }
                entry.done(rc < 0 ? .signaled(SIGKILL) : .from(code: code, status: status))
            }
        }
    }
}
