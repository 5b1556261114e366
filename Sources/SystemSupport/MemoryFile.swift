import CSyscalls
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// An anonymous file in memory (memfd_create(2), close-on-exec): bytes handed to a reader by descriptor.
public enum MemoryFile {
    /// A new, empty memory file named `name` (the name shows in /proc/PID/fd only).
    public static func create(name: String) throws(SystemCallError) -> OwnedFileDescriptor {
        let fd = fb_memfd(name)
        if fd < 0 { throw .negated("memfd_create", path: name, fd) }
        return OwnedFileDescriptor(FileDescriptor(rawValue: fd))
    }

    /// A memory file holding `bytes`, positioned at its start.
    public static func holding(_ bytes: [UInt8], name: String) throws(SystemCallError) -> OwnedFileDescriptor {
        let file = try create(name: name)
        let failure = bytes.withUnsafeBytes { buffer -> SystemCallError? in
            do throws(SystemCallError) { try FileSystem.writeAll(file.rawValue, buffer, path: name) } catch { return error }
            return nil
        }
        if let failure { throw failure }
        if lseek(file.rawValue, 0, SEEK_SET) < 0 { throw .current("lseek", path: name) }
        return file
    }
}
