import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Who is at the other end of a TCP connection on the host's loopback: for a listener an instance with host
/// networking must reach and nothing else on the host may (the runtime API). The kernel's socket table
/// (/proc/self/net/tcp) names the inode of the connecting socket; the connection is the instance's when one of
/// the instance's processes holds that socket (a `socket:[inode]` link in its /proc/PID/fd).
public enum LoopbackPeer {
    /// Whether the socket that connected from 127.0.0.1:`peerPort` to 127.0.0.1:`localPort` is held by one of
    /// `pids`. False when the connection is not in the table (it was closed) or no such process holds it.
    public static func isHeld(peerPort: UInt16, localPort: UInt16, by pids: [pid_t]) -> Bool {
        guard !pids.isEmpty, let table = try? String(contentsOfFile: "/proc/self/net/tcp", encoding: .utf8),
            let inode = peerInode(table: table, peerPort: peerPort, localPort: localPort)
        else { return false }
        let link = "socket:[\(inode)]"
        return pids.contains { holds($0, link: link) }
    }

    /// The inode of the socket whose local end is 127.0.0.1:`peerPort` and remote end 127.0.0.1:`localPort`,
    /// from the text of /proc/net/tcp (addresses in hex: the IPv4 address in host byte order, then the port).
    static func peerInode(table: String, peerPort: UInt16, localPort: UInt16) -> UInt64? {
        let local = loopbackHex(peerPort)
        let remote = loopbackHex(localPort)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[1] == local, fields[2] == remote else { continue }
            if let inode = UInt64(fields[9]), inode != 0 { return inode }
        }
        return nil
    }

    private static func loopbackHex(_ port: UInt16) -> Substring {
        Substring(String(format: "%08X:%04X", UInt32(bigEndian: 0x7F00_0001), port))
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
