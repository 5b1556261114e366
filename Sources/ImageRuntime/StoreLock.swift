import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The store's lock (flock(2) on `store.lock`, so it holds across processes: `faasbox gc` beside a running
/// `serve`). Pulls and rootfs compositions hold it shared — many at once — while they unpack, check and record
/// the layers they use; garbage collection holds it exclusive while it decides what is unused and removes it.
/// So no layer is removed between being found present and being recorded as in use.
struct StoreLock: Sendable {
    let path: String

    func withShared<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T { try locked(LOCK_SH, body) }
    func withExclusive<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T { try locked(LOCK_EX, body) }

    private func locked<T, E: Error>(_ operation: CInt, _ body: () throws(E) -> T) throws(E) -> T {
        // A descriptor of its own each time: flock locks belong to an open file, so threads of one process
        // exclude one another as processes do. Without the file (a read-only store) nothing can race here.
        // Closing the descriptor (when `file` goes, after `body`) releases the lock.
        let file = try? OwnedFileDescriptor.open(path, O_RDWR | O_CREAT, mode: 0o600)
        if let file { _ = Syscall.retrying { flock(file.rawValue, operation) } }
        return try withExtendedLifetime(file) { () throws(E) -> T in try body() }
    }
}

/// A temporary of the store (a layer being unpacked, a blob or an upload being written) is claimed by whoever
/// writes it: an exclusive flock(2) on it, held by an open descriptor until it is renamed into place or
/// removed. A temporary nobody holds is abandoned (its writer died) and may be removed — whatever its name
/// says about a pid, which a later process (serve as pid 1 in a container, every time) may have again.
enum TemporaryClaim {
    /// Claims `path` (made just now by the caller); the claim lasts while the descriptor is open.
    static func claim(_ path: String) throws(SystemCallError) -> OwnedFileDescriptor {
        let file = try OwnedFileDescriptor.open(path, O_RDONLY)
        if Syscall.retrying({ flock(file.rawValue, LOCK_EX | LOCK_NB) }) != 0 { throw .current("flock", path: path) }
        return file
    }

    /// Whether `path` is claimed by a writer now (false: abandoned, or gone).
    static func isClaimed(_ path: String) -> Bool {
        guard let file = try? OwnedFileDescriptor.open(path, O_RDONLY) else { return false }
        return Syscall.retrying({ flock(file.rawValue, LOCK_EX | LOCK_NB) }) != 0 && errno == EWOULDBLOCK
    }
}
