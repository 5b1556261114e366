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
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw .database("open \(path)", String(cString: strerror(errno))) }
        descriptor = OwnedFileDescriptor(rawValue: fd)
        if flock(fd, LOCK_EX | LOCK_NB) != 0 { throw .stateDirInUse(stateDir) }
    }
}
