import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Instances die with the faasbox that started them, even by `kill -9`: every sandbox's pid 1 (faasbox-init)
/// holds the read end of one pipe whose write end only this process holds (close-on-exec, never closed). When
/// this process dies, the kernel closes the write end; faasbox-init sees the end of the pipe (SIGIO) and exits,
/// which ends its whole pid namespace. (PR_SET_PDEATHSIG would follow the thread that cloned the child, and
/// faasbox spawns from a pool of threads that come and go.) What a dead faasbox leaves on disk (mounts, the
/// cgroup, the instance directory) is removed by the next one started on the state dir.
enum Lifeline {
    private static let pipe: (read: OwnedFileDescriptor, write: OwnedFileDescriptor)? = try? OwnedFileDescriptor.pipe()

    /// A read end for one sandbox's pid 1: an open file of its own (reopened through /proc), since the owner
    /// that SIGIO goes to (F_SETOWN) belongs to the open file, which a dup would share with every other sandbox.
    /// Nil if the pipe could not be made (instances then outlive faasbox).
    static func readEnd() -> OwnedFileDescriptor? {
        guard let pipe else { return nil }
        withExtendedLifetime(pipe.write) {}
        return try? OwnedFileDescriptor.open("/proc/self/fd/\(pipe.read.rawValue)", O_RDONLY | O_NONBLOCK)
    }
}
