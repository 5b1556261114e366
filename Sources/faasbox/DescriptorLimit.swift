#if canImport(Glibc)
    import Glibc
#endif

/// Raises the soft limit on open descriptors to the hard one. Each instance holds a few descriptors in faasbox
/// (its output pipes, network namespace, cgroup file, connections), and the soft limit a shell or a systemd
/// unit gives by default (1024) ends `serve` or `bench --idle` at a few hundred instances.
func raiseDescriptorLimit() {
    var limit = rlimit()
    if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}
