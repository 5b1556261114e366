import CArchive
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where an archive reader gets its bytes from. Sources may hash and count what passes through them.
class ReadSource {
    /// The next chunk of bytes, empty at EOF.
    func read() throws(ImageError) -> UnsafeRawBufferPointer { fatalError("abstract") }
    /// Skips up to `count` bytes if the source can do it cheaply; returns how many were skipped.
    func skip(_ count: Int64) -> Int64 { 0 }
    var error: ImageError?
}

/// Reads a file in large chunks, optionally hashing every byte read. It owns the file's descriptor: whatever
/// still reads through it (a decompressing thread) keeps the descriptor open, so its number is never reused
/// under a reader.
final class FileSource: ReadSource {
    private let file: OwnedFileDescriptor
    private var fd: CInt { file.rawValue }
    private let buffer: UnsafeMutableRawBufferPointer
    private(set) var hasher: Hasher?
    private(set) var bytesRead: Int64 = 0
    let label: String

    init(file: OwnedFileDescriptor, label: String, hashing algorithm: Digest.Algorithm? = nil, chunk: Int = 1 << 20) {
        self.file = file
        self.label = label
        self.buffer = .allocate(byteCount: chunk, alignment: 16)
        self.hasher = algorithm.map(Hasher.init)
    }

    deinit { buffer.deallocate() }

    override func read() throws(ImageError) -> UnsafeRawBufferPointer {
        let n = Syscall.retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        if n < 0 { throw .system(.current("read", path: label)) }
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        hasher?.update(chunk)
        bytesRead += Int64(n)
        return chunk
    }

    override func skip(_ count: Int64) -> Int64 {
        // Only an unhashed source may skip: a hashed one must see every byte.
        guard hasher == nil else { return 0 }
        let here = lseek(fd, 0, SEEK_CUR)
        guard here >= 0, lseek(fd, off_t(count), SEEK_CUR) >= 0 else { return 0 }
        bytesRead += count
        return count
    }
}

/// One entry header of an archive, copied out of libarchive.
struct ArchiveEntry {
    enum Kind { case regular, directory, symlink, hardlink, characterDevice, blockDevice, fifo, socket, unknown }
    var path: String
    var kind: Kind
    var mode: mode_t
    var uid: uid_t
    var gid: gid_t
    var mtime: timespec
    var size: Int64
    var linkTarget: String?
    var deviceMajor: UInt32
    var deviceMinor: UInt32
    var xattrs: [(name: String, value: [UInt8])]
}

/// A libarchive reader that yields entries and their data blocks. Not thread-safe; one thread uses it.
final class ArchiveReader {
    enum Format { case tar, raw }

    let handle: OpaquePointer
    private let source: ReadSource
    private let what: String

    init(format: Format, source: ReadSource, what: String) throws(ImageError) {
        guard let a = archive_read_new() else { throw .system(SystemCallError("archive_read_new", errno: .noMemory)) }
        self.handle = a
        self.source = source
        self.what = what
        switch format {
        case .tar:
            archive_read_support_format_tar(a)
            archive_read_support_format_gnutar(a)
        case .raw:
            archive_read_support_format_raw(a)
            archive_read_support_filter_all(a)
        }
        let context = Unmanaged.passUnretained(source).toOpaque()
        archive_read_set_read_callback(a, readCallback)
        archive_read_set_skip_callback(a, skipCallback)
        archive_read_set_callback_data(a, context)
        if archive_read_open1(a) != ARCHIVE_OK { throw failure() }
    }

    deinit { archive_read_free(handle) }

    /// The next entry, or nil at the end of the archive.
    func next() throws(ImageError) -> ArchiveEntry? {
        var entry: OpaquePointer?
        let rc = archive_read_next_header(handle, &entry)
        if rc == ARCHIVE_EOF { return nil }
        if rc < ARCHIVE_WARN { throw failure() }
        guard let e = entry else { throw failure() }
        return ArchiveEntry(copying: e)
    }

    /// The next data block of the current entry and its offset, or nil at its end.
    func readBlock() throws(ImageError) -> (bytes: UnsafeRawBufferPointer, offset: Int64)? {
        var buf: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        let rc = archive_read_data_block(handle, &buf, &size, &offset)
        if rc == ARCHIVE_EOF { return nil }
        if rc < ARCHIVE_WARN { throw failure() }
        return (UnsafeRawBufferPointer(start: buf, count: size), Int64(offset))
    }

    /// The current entry's data, whole, up to `limit` bytes.
    func readAll(limit: Int) throws(ImageError) -> [UInt8] {
        var out: [UInt8] = []
        while let (bytes, offset) = try readBlock() {
            if Int(offset) + bytes.count > limit { throw .limitExceeded("\(what): a metadata file is over \(limit) bytes") }
            if out.count < Int(offset) { out.append(contentsOf: repeatElement(0, count: Int(offset) - out.count)) }
            out.append(contentsOf: bytes)
        }
        return out
    }

    private func failure() -> ImageError {
        if let error = source.error { return error }
        let message = archive_error_string(handle).map { String(cString: $0) } ?? "unknown libarchive error"
        return .corruptArchive(what: what, reason: message)
    }
}

private func readCallback(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    let source = Unmanaged<ReadSource>.fromOpaque(context!).takeUnretainedValue()
    do {
        let chunk = try source.read()
        buffer?.pointee = chunk.baseAddress
        return la_ssize_t(chunk.count)
    } catch {
        source.error = error
        return -1
    }
}

private func skipCallback(_ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ request: la_int64_t) -> la_int64_t {
    let source = Unmanaged<ReadSource>.fromOpaque(context!).takeUnretainedValue()
    return la_int64_t(source.skip(Int64(request)))
}

extension ArchiveEntry {
    init(copying e: OpaquePointer) {
        let rawPath = archive_entry_pathname_utf8(e) ?? archive_entry_pathname(e)
        path = rawPath.map { String(cString: $0) } ?? ""
        let type = archive_entry_filetype(e)
        let hardlink = archive_entry_hardlink_utf8(e) ?? archive_entry_hardlink(e)
        switch type {
        case _ where hardlink != nil: kind = .hardlink
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        default: kind = .unknown
        }
        mode = archive_entry_perm(e) & 0o7777
        uid = uid_t(truncatingIfNeeded: archive_entry_uid(e))
        gid = gid_t(truncatingIfNeeded: archive_entry_gid(e))
        mtime = timespec(tv_sec: archive_entry_mtime(e), tv_nsec: archive_entry_mtime_nsec(e))
        size = Int64(archive_entry_size(e))
        if let hardlink {
            linkTarget = String(cString: hardlink)
        } else if let symlink = archive_entry_symlink_utf8(e) ?? archive_entry_symlink(e) {
            linkTarget = String(cString: symlink)
        } else {
            linkTarget = nil
        }
        deviceMajor = UInt32(archive_entry_rdevmajor(e))
        deviceMinor = UInt32(archive_entry_rdevminor(e))
        xattrs = []
        if archive_entry_xattr_reset(e) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK, let name {
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                xattrs.append((String(cString: name), bytes))
            }
        }
    }
}
