import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Who is at the other end of a TCP connection on the host's loopback: for a listener an instance with host
/// networking must reach and nothing else on the host may (the runtime API). The kernel's socket diagnostics
/// (sock_diag, an exact lookup by the connection's ports) name the inode of the connecting socket; the connection
/// is the instance's when one of the instance's processes holds that socket (a `socket:[inode]` link in its
/// /proc/PID/fd). (/proc/net/tcp would do too, but it is no snapshot: read while other connections come and go,
/// it can skip the very line wanted.)
public enum LoopbackPeer {
    /// Whether the socket that connected from 127.0.0.1:`peerPort` to 127.0.0.1:`localPort` is held by one of
    /// `pids`. False when the connection is gone (it was closed) or no such process holds it.
    public static func isHeld(peerPort: UInt16, localPort: UInt16, by pids: [pid_t]) -> Bool {
        guard !pids.isEmpty, let inode = try? LoopbackSocket.inode(fromPort: peerPort, toPort: localPort), inode != 0
        else { return false }
        let link = "socket:[\(inode)]"
        return pids.contains { holds($0, link: link) }
    }

    /// Whether process `pid` has a descriptor open on `link` (readlink of /proc/PID/fd/N).
    private static func holds(_ pid: pid_t, link: String) -> Bool {
        let dir = "/proc/\(pid)/fd"
        guard let stream = opendir(dir) else { return false }
        defer { closedir(stream) }
        var buffer = [CChar](repeating: 0, count: 64)
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true else { continue }
            let n = readlink("\(dir)/\(name)", &buffer, buffer.count - 1)
            guard n > 0 else { continue }
            buffer[n] = 0
            if String(cString: buffer) == link { return true }
        }
        return false
    }
}

extension CgroupHost {
    /// The processes in the cgroup of instance `id`, from the moment it joins it (before it runs the
    /// program): empty when there is no such cgroup.
    public func processes(ofInstance id: String) -> [pid_t] {
        leftoverInstance(id)?.processes() ?? []
    }
}
