import Foundation
import SystemPackage
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Applies stored layers (in overlayfs form) in order into a directory, the way an overlay mount would show
/// them: whiteouts (0/0 character devices) remove, opaque directories empty what is below them, files are
/// hard-linked to the store, everything else is recreated.
enum HardlinkFarm {
    static func apply(_ layers: [String], into target: String) throws(SystemCallError) {
        for layer in layers { try merge(layer, into: target, isTop: true) }
    }

    private static func merge(_ source: String, into target: String, isTop: Bool) throws(SystemCallError) {
        if !isTop && isOpaque(source) {
            try FileSystem.removeTree(target)
            if mkdir(target, 0o755) != 0 { throw .current("mkdir", path: target) }
        }
        try copyMetadata(from: source, to: target)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: source) } catch {
            throw .current("opendir", path: source)
        }
        for name in names {
            let from = "\(source)/\(name)", to = "\(target)/\(name)"
            var st = stat()
            if lstat(from, &st) != 0 { throw .current("lstat", path: from) }
            let type = st.st_mode & S_IFMT
            if type == S_IFCHR && st.st_rdev == 0 {  // whiteout
                try FileSystem.removeTree(to)
                continue
            }
            var existing = stat()
            let exists = lstat(to, &existing) == 0
            if type == S_IFDIR {
                if exists && (existing.st_mode & S_IFMT) != S_IFDIR { try FileSystem.removeTree(to) }
                if !exists || (existing.st_mode & S_IFMT) != S_IFDIR {
                    if mkdir(to, 0o755) != 0 { throw .current("mkdir", path: to) }
                }
                try merge(from, into: to, isTop: false)
                continue
            }
            if exists { try FileSystem.removeTree(to) }
            switch type {
            case S_IFREG:
                if link(from, to) != 0 { throw .current("link", path: to) }
            case S_IFLNK:
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: from) else {
                    throw .current("readlink", path: from)
                }
                if symlink(target, to) != 0 { throw .current("symlink", path: to) }
                lchown(to, st.st_uid, st.st_gid)
            default:
                try DeviceNode.make(
                    in: FileDescriptor(rawValue: AT_FDCWD), to, mode: st.st_mode, major: UInt32(major(st.st_rdev)),
                    minor: UInt32(minor(st.st_rdev)))
                lchown(to, st.st_uid, st.st_gid)
            }
        }
    }

    private static func isOpaque(_ directory: String) -> Bool {
        guard let file = try? OwnedFileDescriptor.open(directory, O_RDONLY | O_DIRECTORY) else { return false }
        return ExtendedAttribute.get(file.fd, "trusted.overlay.opaque", capacity: 1) == [UInt8(ascii: "y")]
    }

    private static func copyMetadata(from source: String, to target: String) throws(SystemCallError) {
        var st = stat()
        if lstat(source, &st) != 0 { throw .current("lstat", path: source) }
        if chown(target, st.st_uid, st.st_gid) != 0 { throw .current("chown", path: target) }
        if chmod(target, st.st_mode & 0o7777) != 0 { throw .current("chmod", path: target) }
    }

    private static func major(_ dev: dev_t) -> UInt64 { (UInt64(dev) >> 8) & 0xfff | (UInt64(dev) >> 32) & ~0xfff }
    private static func minor(_ dev: dev_t) -> UInt64 { UInt64(dev) & 0xff | (UInt64(dev) >> 12) & ~0xff }
}
