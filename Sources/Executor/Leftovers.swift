import Foundation
import ImageRuntime
import Sandbox
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What a faasbox that died (kill -9, a crash, a power cut) left behind in its state dir: instances whose
/// processes may still run, their cgroups and their rootfs mounts. `serve` removes them before it starts.
public enum Leftovers {
    /// Kills every process of each leftover instance (through its cgroup), removes the cgroup, unmounts and
    /// deletes its rootfs; returns the ids it cleaned.
    public static func clean(store: ImageStore, cgroups: CgroupHost = .current) -> [String] {
        let ids = store.instanceIDs()
        for id in ids {
            if let cgroup = cgroups.leftoverInstance(id) {
                cgroup.killAll()
                try? cgroup.remove()
            }
            _ = store.removeInstance(id)
        }
        return ids
    }
}

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
