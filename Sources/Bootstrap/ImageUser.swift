import Sandbox
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The image config's `User` ("name", "uid", "name:group", "uid:gid"…) as ids, names looked up in the
/// image's own /etc/passwd and /etc/group (read inside the rootfs, never following a link out of it).
enum ImageUser {
    static func resolve(_ user: String, rootfs: String) throws(BootstrapError) -> SandboxSpec.User? {
        if user.isEmpty { return nil }
        let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
        let passwd = parts[0]
        var uid: UInt32
        var gid: UInt32
        if let numeric = UInt32(passwd) {
            uid = numeric
            gid = entry(named: nil, id: numeric, in: "/etc/passwd", rootfs: rootfs)?.gid ?? numeric
        } else {
            guard let found = entry(named: passwd, id: nil, in: "/etc/passwd", rootfs: rootfs) else {
                throw .invalidRequest("the image's User \"\(user)\": no user \"\(passwd)\" in its /etc/passwd")
            }
            uid = found.id
            gid = found.gid
        }
        if parts.count == 2 {
            if let numeric = UInt32(parts[1]) {
                gid = numeric
            } else {
                guard let group = entry(named: parts[1], id: nil, in: "/etc/group", rootfs: rootfs) else {
                    throw .invalidRequest("the image's User \"\(user)\": no group \"\(parts[1])\" in its /etc/group")
                }
                gid = group.id
            }
        }
        // (uid_t)-1 tells setresuid/setresgid "leave unchanged": the function would keep faasbox's own ids (root).
        if uid == UInt32.max || gid == UInt32.max {
            throw .invalidRequest(
                "the image's User \"\(user)\" resolves to id 4294967295, which the kernel reads as \"unchanged\"; refused")
        }
        return SandboxSpec.User(uid: uid, gid: gid)
    }

    /// The line of a passwd/group file with that name or id: (id, gid). For /etc/group, gid == id.
    static func entry(named name: String?, id: UInt32?, in file: String, rootfs: String) -> (id: UInt32, gid: UInt32)? {
        guard let text = readInRoot(file, rootfs: rootfs) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, let fieldID = UInt32(fields[2]) else { continue }
            let gid = fields.count >= 4 ? UInt32(fields[3]) ?? fieldID : fieldID
            if let name, fields[0] == name { return (fieldID, file == "/etc/group" ? fieldID : gid) }
            if let id, fieldID == id { return (fieldID, file == "/etc/group" ? fieldID : gid) }
        }
        return nil
    }

    private static func readInRoot(_ path: String, rootfs: String) -> String? {
        guard let file = try? OwnedFileDescriptor.open(path, inRoot: rootfs, O_RDONLY) else { return nil }
        return (try? file.readToEnd(limit: 1 << 20)).map { String(decoding: $0, as: UTF8.self) }
    }
}
