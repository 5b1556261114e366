#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body` on the calling thread at the lowest scheduling priority (nice 19; on Linux the nice value is the
/// thread's own), then restores the thread's previous value. For bulk work that must not take a CPU from
/// latency-bound work when both want one: a thread woken meanwhile preempts it at once.
/// Only as root (raising the priority back needs CAP_SYS_NICE); otherwise `body` runs at the thread's own priority.
public func withBackgroundPriority<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    let which = __priority_which_t(PRIO_PROCESS.rawValue)
    errno = 0
    let previous = getpriority(which, 0)
    guard geteuid() == 0, errno == 0, previous < 19, setpriority(which, 0, 19) == 0 else { return try body() }
    defer { setpriority(which, 0, previous) }
    return try body()
}
