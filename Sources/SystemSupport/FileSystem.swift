import CSyscalls
import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Small file-system helpers shared by the modules; every failure names the call and the path.
public enum FileSystem {
    /// The size and free space (for an unprivileged writer) of the filesystem holding `path`, from statvfs(2).
    public static func usage(of path: String) -> (size: Int64, free: Int64)? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return (Int64(st.f_blocks) * Int64(st.f_frsize), Int64(st.f_bavail) * Int64(st.f_frsize))
    }

    /// mkdir -p; existing directories are fine.
    public static func createDirectory(_ path: String, mode: mode_t = 0o755) throws(SystemCallError) {
        if mkdir(path, mode) == 0 || Glibc.errno == EEXIST { return }
        if Glibc.errno == ENOENT {
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty && parent != path {
                try createDirectory(parent, mode: mode)
                if mkdir(path, mode) == 0 || Glibc.errno == EEXIST { return }
            }
        }
        throw .current("mkdir", path: path)
    }

    /// rm -rf that never crosses into another mount (a mount point is an error, not something to empty).
    /// Returns the disk space it freed: the blocks of what it removed, counting a file only where its last
    /// name went (a hard link elsewhere keeps it).
    @discardableResult
    public static func removeTree(_ path: String) throws(SystemCallError) -> Int64 {
        var st = stat()
        if lstat(path, &st) != 0 {
            if Glibc.errno == ENOENT { return 0 }
            throw .current("lstat", path: path)
        }
        let rootDevice = st.st_dev
        var freed: Int64 = 0
        try removeEntry(path, st: st, device: rootDevice, freed: &freed)
        return freed
    }

    private static func removeEntry(_ path: String, st: stat, device: dev_t, freed: inout Int64) throws(SystemCallError) {
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if st.st_dev != device { throw SystemCallError("rmdir", path: path, errno: .resourceBusy) }
            guard let dir = opendir(path) else {
                if Glibc.errno == ENOENT { return }
                throw .current("opendir", path: path)
            }
            var children: [String] = []
            while let ent = readdir(dir) {
                let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { children.append(name) }
            }
            closedir(dir)
            for name in children {
                let child = path + "/" + name
                var cst = stat()
                if lstat(child, &cst) != 0 { continue }
                try removeEntry(child, st: cst, device: device, freed: &freed)
            }
            if rmdir(path) != 0 && Glibc.errno != ENOENT { throw .current("rmdir", path: path) }
            freed += Int64(st.st_blocks) * 512
        } else if unlink(path) != 0 && Glibc.errno != ENOENT {
            throw .current("unlink", path: path)
        } else if st.st_nlink == 1 {
            freed += Int64(st.st_blocks) * 512
        }
    }

    /// Writes `bytes` to a temp file beside `path` and renames it into place.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SystemCallError) {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do { try writeNewFile(tmp, bytes, mode: mode) } catch {
            unlink(tmp)
            throw error
        }
        if rename(tmp, path) != 0 {
            let e = SystemCallError.current("rename", path: path)
            unlink(tmp)
            throw e
        }
    }

    /// Creates `path` (which must not exist) holding `bytes`: for a file no one reads while it is written.
    public static func writeNewFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SystemCallError) {
        let file = try OwnedFileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        let failure = bytes.withUnsafeBytes { buffer -> SystemCallError? in
            do throws(SystemCallError) { try writeAll(file.rawValue, buffer, path: path) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// write(2) until every byte is written, retrying EINTR.
    public static func writeAll(_ fd: CInt, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = Syscall.retrying { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
            if n < 0 { throw .current("write", path: path) }
            done += n
        }
    }

    /// The contents of a small file.
    public static func read(_ path: String, limit: Int = 1 << 24) throws(SystemCallError) -> [UInt8] {
        let owned = try OwnedFileDescriptor.open(path, O_RDONLY)
        do { return try owned.readToEnd(limit: limit) } catch {
            throw SystemCallError(error.call, path: path, errno: error.errno)
        }
    }

    /// A /proc file read whole (their stat size is 0). Tables such as mountinfo are read in page-sized
    /// chunks by the kernel, so a line can be missed while other threads mount and unmount: to ask whether
    /// one path is a mount point, use `isMountPoint`.
    public static func readProcFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return "" }
        defer { close(fd) }
        var capacity = 1 << 20
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return "" }
            if n < capacity { return String(decoding: buffer[0..<n], as: UTF8.self) }
            capacity *= 4
            lseek(fd, 0, SEEK_SET)
        }
    }

    /// Whether `path` is the root of a mount (statx's STATX_ATTR_MOUNT_ROOT).
    public static func isMountPoint(_ path: String) -> Bool {
        fb_is_mount_root(path) == 1
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
