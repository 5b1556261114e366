import Logging
import SystemPackage
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Writes the entries of one layer into an empty directory, in overlayfs form: `.wh.x` becomes a 0/0 character
/// device `x`, `.wh..wh..opq` sets `trusted.overlay.opaque` on its directory. Nothing is ever written outside
/// the directory: paths with `..`, absolute paths, paths through symlinks and hardlinks out of the layer are refused.
final class LayerUnpacker {
    private let root: OwnedFileDescriptor
    private let rootPath: String
    private var parentCache: (path: String, fd: OwnedFileDescriptor)?
    private var directoryTimes: [(path: String, time: timespec)] = []
    private let logger: Logger
    private let limits: UnpackLimits
    private let isRoot = geteuid() == 0
    private(set) var entries = 0

    init(directory: String, limits: UnpackLimits, logger: Logger) throws(ImageError) {
        do { root = try .open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch { throw .system(error) }
        rootPath = directory
        self.limits = limits
        self.logger = logger
    }

    /// Applies every entry of `reader`; `entryBudget` bounds the count.
    func unpack(_ reader: ArchiveReader, entryBudget: Int) throws(ImageError) {
        while let entry = try reader.next() {
            entries += 1
            if entries > entryBudget { throw .limitExceeded("more than \(limits.maxEntries) entries") }
            try apply(entry, reader)
        }
        try applyDirectoryTimes()
    }

    private func apply(_ entry: ArchiveEntry, _ reader: ArchiveReader) throws(ImageError) {
        let components = try Self.components(of: entry.path, limits: limits)
        guard let name = components.last else {
            // The layer's root itself ("./"): take its metadata.
            if entry.kind == .directory { try setMetadata(fd: root.rawValue, entry) }
            return
        }
        let parentPath = components.dropLast().joined(separator: "/")
        if name.hasPrefix(".wh.") {
            try applyWhiteout(name: name, parentPath: parentPath, entry: entry)
            return
        }
        let parent = try openParent(parentPath, create: true, entry: entry.path)
        switch entry.kind {
        case .directory: try makeDirectory(parent, name, entry, path: components.joined(separator: "/"))
        case .regular: try writeFile(parent, name, entry, reader)
        case .symlink: try makeSymlink(parent, name, entry)
        case .hardlink: try makeHardlink(parent, name, entry)
        case .characterDevice, .blockDevice, .fifo: try makeNode(parent, name, entry)
        case .socket, .unknown:
            logger.warning("skipping layer entry of unsupported type", metadata: ["entry": "\(entry.path)"])
        }
    }

    /// Splits an entry path into clean components, refusing absolute paths and `..`.
    static func components(of path: String, limits: UnpackLimits) throws(ImageError) -> [String] {
        if path.utf8.count > limits.maxPathLength { throw .limitExceeded("entry path longer than \(limits.maxPathLength) bytes") }
        if path.hasPrefix("/") { throw .entryEscapesRoot(path) }
        if path.utf8.contains(0) { throw .unsafeEntry(path, reason: "NUL in path") }
        var out: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw .entryEscapesRoot(path) }
            out.append(String(part))
        }
        return out
    }

    // MARK: - Parents

    /// Opens the directory `path` inside the layer, never through a symlink; creates missing directories.
    private func openParent(_ path: String, create: Bool, entry: String) throws(ImageError) -> CInt {
        if path.isEmpty { return root.rawValue }
        if let cached = parentCache, cached.path == path { return cached.fd.rawValue }
        let resolve = Resolve.beneath | Resolve.noSymlinks | Resolve.noMagicLinks
        let opened: OwnedFileDescriptor
        do { opened = try .openat2(root.fd, path, flags: O_RDONLY | O_DIRECTORY, resolve: resolve) } catch {
            return try refuseParent(error, path, create: create, entry: entry)
        }
        parentCache = (path, opened)
        return opened.rawValue
    }

    /// Why the parent `path` could not be opened, as the entry's error; or, when it is missing and may be
    /// created, the directories made.
    private func refuseParent(_ error: SystemCallError, _ path: String, create: Bool, entry: String) throws(ImageError) -> CInt {
        switch error.errno.rawValue {
        case ENOENT where create:
            return try createParents(path, entry: entry)
        case ENOENT:
            throw .hardlinkTargetMissing(entry: entry, target: path)
        case ELOOP, EXDEV:
            throw .unsafeEntry(entry, reason: "its path goes through a symbolic link")
        case ENOTDIR:
            throw .unsafeEntry(entry, reason: "a parent of it is not a directory")
        default:
            throw .system(SystemCallError("openat2", path: "\(rootPath)/\(path)", errno: error.errno))
        }
    }

    private func createParents(_ path: String, entry: String) throws(ImageError) -> CInt {
        var current = root.rawValue
        var owned: OwnedFileDescriptor?
        for part in path.split(separator: "/") {
            let name = String(part)
            if mkdirat(current, name, 0o755) != 0 && errno != EEXIST {
                throw .system(.current("mkdirat", path: "\(rootPath)/\(path)"))
            }
            do {
                owned = try .openat2(
                    FileDescriptor(rawValue: current), name, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                    resolve: Resolve.beneath | Resolve.noSymlinks)
            } catch {
                if error.errno == .tooManySymbolicLinkLevels || error.errno == .notDirectory {
                    throw .unsafeEntry(entry, reason: "its path goes through a symbolic link or a file")
                }
                throw .system(SystemCallError("openat2", path: "\(rootPath)/\(path)", errno: error.errno))
            }
            current = owned!.rawValue
            parentCache = (path, owned!)
        }
        return current
    }

    // MARK: - Entries

    private func makeDirectory(_ parent: CInt, _ name: String, _ entry: ArchiveEntry, path: String) throws(ImageError) {
        if mkdirat(parent, name, 0o700) != 0 {
            guard errno == EEXIST else { throw .system(.current("mkdirat", path: entry.path)) }
            if !isDirectory(parent, name) {
                try removeExisting(parent, name, entry: entry.path)
                if mkdirat(parent, name, 0o700) != 0 { throw .system(.current("mkdirat", path: entry.path)) }
            }
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw .system(.current("openat", path: entry.path)) }
        defer { close(fd) }
        try setOwnerAndMode(fd: fd, entry)
        try setXattrs(fd: fd, entry)
        directoryTimes.append((path, entry.mtime))
    }

    private func writeFile(_ parent: CInt, _ name: String, _ entry: ArchiveEntry, _ reader: ArchiveReader) throws(ImageError) {
        var fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 && errno == EEXIST {
            try removeExisting(parent, name, entry: entry.path)
            fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        if fd < 0 { throw .system(.current("openat", path: entry.path)) }
        defer { close(fd) }
        var end: Int64 = 0
        while let (bytes, offset) = try reader.readBlock() {
            try writeAll(fd, bytes, at: offset, path: entry.path)
            end = offset + Int64(bytes.count)
        }
        if end < entry.size && ftruncate(fd, off_t(entry.size)) != 0 {
            throw .system(.current("ftruncate", path: entry.path))
        }
        try setMetadata(fd: fd, entry)
    }

    private func writeAll(_ fd: CInt, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(ImageError) {
        var done = 0
        while done < bytes.count {
            let n = Syscall.retrying { pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 { throw .system(.current("write", path: path)) }
            done += n
        }
    }

    private func makeSymlink(_ parent: CInt, _ name: String, _ entry: ArchiveEntry) throws(ImageError) {
        guard let target = entry.linkTarget else {
            throw .malformed(what: "layer entry \(entry.path)", reason: "symlink without target")
        }
        if symlinkat(target, parent, name) != 0 {
            guard errno == EEXIST else { throw .system(.current("symlinkat", path: entry.path)) }
            try removeExisting(parent, name, entry: entry.path)
            if symlinkat(target, parent, name) != 0 { throw .system(.current("symlinkat", path: entry.path)) }
        }
        if isRoot && fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) != 0 {
            throw .system(.current("fchownat", path: entry.path))
        }
        var times = [entry.mtime, entry.mtime]
        _ = utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
    }

    private func makeHardlink(_ parent: CInt, _ name: String, _ entry: ArchiveEntry) throws(ImageError) {
        guard let target = entry.linkTarget else {
            throw .malformed(what: "layer entry \(entry.path)", reason: "hardlink without target")
        }
        let targetParts: [String]
        do { targetParts = try Self.components(of: target, limits: limits) } catch {
            throw .entryEscapesRoot("\(entry.path) -> \(target)")
        }
        guard let targetName = targetParts.last else { throw .unsafeEntry(entry.path, reason: "hardlink to the root directory") }
        // Resolving the target may replace the cached parent, so keep our own descriptor of it.
        let parentDup = fcntl(parent, F_DUPFD_CLOEXEC, 0)
        if parentDup < 0 { throw .system(.current("fcntl", path: entry.path)) }
        defer { close(parentDup) }
        let targetParent = try openParent(targetParts.dropLast().joined(separator: "/"), create: false, entry: entry.path)
        var st = stat()
        if fstatat(targetParent, targetName, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            throw .hardlinkTargetMissing(entry: entry.path, target: target)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw .unsafeEntry(entry.path, reason: "hardlink to a directory") }
        if linkat(targetParent, targetName, parentDup, name, 0) != 0 {
            guard errno == EEXIST else { throw .system(.current("linkat", path: entry.path)) }
            try removeExisting(parentDup, name, entry: entry.path)
            if linkat(targetParent, targetName, parentDup, name, 0) != 0 { throw .system(.current("linkat", path: entry.path)) }
        }
    }

    private func makeNode(_ parent: CInt, _ name: String, _ entry: ArchiveEntry) throws(ImageError) {
        let type: mode_t = entry.kind == .fifo ? S_IFIFO : entry.kind == .blockDevice ? S_IFBLK : S_IFCHR
        let (major, minor) = entry.kind == .fifo ? (0, 0) : (entry.deviceMajor, entry.deviceMinor)
        let make = { () throws(SystemCallError) in
            try DeviceNode.make(
                in: FileDescriptor(rawValue: parent), name, mode: type | (entry.mode & 0o777), major: major, minor: minor)
        }
        var failure: SystemCallError?
        do { try make() } catch { failure = error }
        if failure?.errno == .fileExists {
            try removeExisting(parent, name, entry: entry.path)
            failure = nil
            do { try make() } catch { failure = error }
        }
        if let error = failure {
            if error.errno == .notPermitted {
                logger.warning("skipping device node: not permitted here", metadata: ["entry": "\(entry.path)"])
                return
            }
            throw .system(SystemCallError("mknodat", path: entry.path, errno: error.errno))
        }
        if isRoot && fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) != 0 {
            throw .system(.current("fchownat", path: entry.path))
        }
        var times = [entry.mtime, entry.mtime]
        _ = utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
    }

    private func applyWhiteout(name: String, parentPath: String, entry: ArchiveEntry) throws(ImageError) {
        let parent = try openParent(parentPath, create: true, entry: entry.path)
        if name == ".wh..wh..opq" {
            do {
                try ExtendedAttribute.set(FileDescriptor(rawValue: parent), "trusted.overlay.opaque", [UInt8(ascii: "y")])
            } catch {
                throw .system(SystemCallError(error.call, path: entry.path, errno: error.errno))
            }
            return
        }
        let hidden = String(name.dropFirst(4))
        if hidden.hasPrefix(".wh.") { return }  // other AUFS metadata (.wh..wh.plnk, …)
        if hidden.isEmpty || hidden == "." || hidden == ".." { throw .unsafeEntry(entry.path, reason: "whiteout of nothing") }
        // A whiteout hides lower layers only: an entry of this layer with the same name stays.
        var st = stat()
        if fstatat(parent, hidden, &st, AT_SYMLINK_NOFOLLOW) == 0 { return }
        do { try DeviceNode.whiteout(in: FileDescriptor(rawValue: parent), hidden) } catch {
            throw .system(SystemCallError(error.call, path: entry.path, errno: error.errno))
        }
    }

    // MARK: - Metadata

    private func setMetadata(fd: CInt, _ entry: ArchiveEntry) throws(ImageError) {
        try setOwnerAndMode(fd: fd, entry)
        try setXattrs(fd: fd, entry)
        var times = [entry.mtime, entry.mtime]
        if futimens(fd, &times) != 0 { throw .system(.current("futimens", path: entry.path)) }
    }

    private func setOwnerAndMode(fd: CInt, _ entry: ArchiveEntry) throws(ImageError) {
        // chown first: it clears setuid/setgid, which fchmod then sets.
        if isRoot && fchown(fd, entry.uid, entry.gid) != 0 { throw .system(.current("fchown", path: entry.path)) }
        if fchmod(fd, entry.mode) != 0 { throw .system(.current("fchmod", path: entry.path)) }
    }

    private func setXattrs(fd: CInt, _ entry: ArchiveEntry) throws(ImageError) {
        for (name, value) in entry.xattrs {
            if name.hasPrefix("trusted.overlay.") {
                throw .unsafeEntry(entry.path, reason: "it sets the overlayfs attribute \(name)")
            }
            do { try ExtendedAttribute.set(FileDescriptor(rawValue: fd), name, value) } catch {
                logger.warning(
                    "skipping extended attribute",
                    metadata: [
                        "entry": "\(entry.path)", "xattr": "\(name)", "errno": "\(error.errno.rawValue)",
                    ])
            }
        }
    }

    private func applyDirectoryTimes() throws(ImageError) {
        parentCache = nil
        for (path, time) in directoryTimes.reversed() {
            guard
                let directory = try? OwnedFileDescriptor.openat2(
                    root.fd, path, flags: O_RDONLY | O_DIRECTORY, resolve: Resolve.beneath | Resolve.noSymlinks)
            else { continue }  // replaced or removed by a later entry
            var times = [time, time]
            futimens(directory.rawValue, &times)
        }
    }

    // MARK: - Replacing

    private func isDirectory(_ parent: CInt, _ name: String) -> Bool {
        var st = stat()
        return fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Removes what is at `name` so a later entry of the same path replaces it. A cached descriptor of the
    /// removed directory or of anything below it is dropped; `parent` itself stays open.
    private func removeExisting(_ parent: CInt, _ name: String, entry: String) throws(ImageError) {
        if unlinkat(parent, name, 0) == 0 { return }
        guard errno == EISDIR else { throw .system(.current("unlinkat", path: entry)) }
        if let cached = parentCache, let removed = try? Self.components(of: entry, limits: limits).joined(separator: "/"),
            cached.path == removed || cached.path.hasPrefix(removed + "/")
        {
            parentCache = nil
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw .system(.current("openat", path: entry)) }
        try removeContents(fd, path: entry)
        close(fd)
        if unlinkat(parent, name, AT_REMOVEDIR) != 0 { throw .system(.current("unlinkat", path: entry)) }
    }

    private func removeContents(_ dirfd: CInt, path: String) throws(ImageError) {
        let dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let dir = fdopendir(dup) else { throw .system(.current("fdopendir", path: path)) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names where unlinkat(dirfd, name, 0) != 0 {
            guard errno == EISDIR else { throw .system(.current("unlinkat", path: "\(path)/\(name)")) }
            let child = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child < 0 { throw .system(.current("openat", path: "\(path)/\(name)")) }
            try removeContents(child, path: "\(path)/\(name)")
            close(child)
            if unlinkat(dirfd, name, AT_REMOVEDIR) != 0 { throw .system(.current("unlinkat", path: "\(path)/\(name)")) }
        }
    }
}
