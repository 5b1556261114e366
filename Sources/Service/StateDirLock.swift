import Executor
import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive lock on a state dir, held as long as the process lives (flock: the kernel lets go when the
/// process dies, however it dies), so two servers never share one state dir.
public final class StateDirLock: Sendable {
    private let descriptor: OwnedFileDescriptor

    public init(stateDir: String) throws(ServiceError) {
        let path = "\(stateDir)/serve.lock"
        do { descriptor = try .open(path, O_RDWR | O_CREAT, mode: 0o600) } catch {
            throw .database("open \(path)", "\(error.errno)")
        }
        if flock(descriptor.rawValue, LOCK_EX | LOCK_NB) != 0 { throw .stateDirInUse(stateDir) }
    }
}
