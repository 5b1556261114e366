import CSpawn
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One filesystem step for the child (see `fb_op` in csandbox.h).
struct MountStep: Sendable {
    var op: fb_op
    var source: String?
    var target: String
    var fstype: String?
    var flags: UInt = 0
    var data: String?
    var mode: UInt32 = 0

    /// How a failure of this step is named to the user.
    var name: String {
        switch op {
        case FB_OP_MOUNT: return "mount \(fstype ?? "bind") on \(target)"
        case FB_OP_PIVOT: return "pivot_root into \(target)"
        case FB_OP_REMOUNT: return "remount \(target)"
        case FB_OP_MKDIR: return "mkdir \(target)"
        case FB_OP_TOUCH: return "create \(target)"
        case FB_OP_SYMLINK: return "symlink \(target)"
        case FB_OP_MASK_PATH: return "mask \(target)"
        case FB_OP_READONLY_PATH: return "make \(target) read-only"
        case FB_OP_MOVE_MOUNT: return "bind \(source ?? "") on \(target)"
        default: return "step \(op.rawValue) on \(target)"
        }
    }
}

/// The filesystem a sandboxed process sees, as an ordered list of steps: the rootfs bound on itself, a fresh
/// /proc, a minimal /dev, /tmp as a bounded tmpfs, pivot_root, then the rootfs read-only and /proc's dangerous
/// files masked. Host paths of mount points are prepared (real directories, never symlinks) before the clone.
enum Mounts {
    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]
    static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    ]
    static let readOnlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    /// `sources`: for each of `spec.mounts`, the descriptor number (in the child) of a detached copy of its
    /// source tree that the parent made (`openSources`); the child attaches it, so it needs no access to the
    /// source's host path (a user namespace's root has none to a 0700 directory), and a path swapped since it
    /// was opened changes nothing.
    static func steps(for spec: SandboxSpec, sources: [CInt]) -> [MountStep] {
        let root = spec.rootfs
        let nosuidNodev = UInt(MS_NOSUID | MS_NODEV)
        var steps: [MountStep] = [
            MountStep(op: FB_OP_MOUNT, source: root, target: root, flags: UInt(MS_BIND | MS_REC)),
            MountStep(
                op: FB_OP_MOUNT, source: "proc", target: "\(root)/proc", fstype: "proc",
                flags: nosuidNodev | UInt(MS_NOEXEC)),
            MountStep(
                op: FB_OP_MOUNT, source: "tmpfs", target: "\(root)/dev", fstype: "tmpfs",
                flags: UInt(MS_NOSUID | MS_NOEXEC), data: "mode=755,size=65536,nr_inodes=64"),
        ]
        for device in devices {
            steps.append(MountStep(op: FB_OP_TOUCH, target: "\(root)/dev/\(device)", mode: 0o666))
            steps.append(
                MountStep(
                    op: FB_OP_MOUNT, source: "/dev/\(device)", target: "\(root)/dev/\(device)",
                    flags: UInt(MS_BIND)))
        }
        steps += [
            MountStep(op: FB_OP_MKDIR, target: "\(root)/dev/pts", mode: 0o755),
            MountStep(
                op: FB_OP_MOUNT, source: "devpts", target: "\(root)/dev/pts", fstype: "devpts",
                flags: UInt(MS_NOSUID | MS_NOEXEC), data: "newinstance,ptmxmode=0666,mode=0620"),
            MountStep(op: FB_OP_SYMLINK, source: "pts/ptmx", target: "\(root)/dev/ptmx"),
            MountStep(op: FB_OP_MKDIR, target: "\(root)/dev/shm", mode: 0o1777),
            MountStep(
                op: FB_OP_MOUNT, source: "shm", target: "\(root)/dev/shm", fstype: "tmpfs",
                flags: nosuidNodev | UInt(MS_NOEXEC), data: "mode=1777,size=67108864"),
            MountStep(op: FB_OP_SYMLINK, source: "/proc/self/fd", target: "\(root)/dev/fd"),
            MountStep(op: FB_OP_SYMLINK, source: "/proc/self/fd/0", target: "\(root)/dev/stdin"),
            MountStep(op: FB_OP_SYMLINK, source: "/proc/self/fd/1", target: "\(root)/dev/stdout"),
            MountStep(op: FB_OP_SYMLINK, source: "/proc/self/fd/2", target: "\(root)/dev/stderr"),
            MountStep(op: FB_OP_REMOUNT, target: "\(root)/dev", flags: UInt(MS_NOSUID | MS_NOEXEC | MS_RDONLY)),
            MountStep(
                op: FB_OP_MOUNT, source: "tmpfs", target: "\(root)/tmp", fstype: "tmpfs", flags: nosuidNodev,
                data: "mode=1777,size=\(spec.limits.tmpBytes)"),
        ]
        for (mount, fd) in zip(spec.mounts, sources) {
            steps.append(MountStep(op: FB_OP_MOVE_MOUNT, source: mount.source, target: root + mount.target, flags: UInt(fd)))
        }
        steps += [
            MountStep(op: FB_OP_PIVOT, target: root),
            MountStep(op: FB_OP_REMOUNT, target: "/", flags: nosuidNodev | UInt(MS_RDONLY)),
        ]
        steps += maskedPaths.map { MountStep(op: FB_OP_MASK_PATH, target: $0) }
        steps += readOnlyPaths.map { MountStep(op: FB_OP_READONLY_PATH, target: $0) }
        return steps
    }

    /// A detached copy of each mount's source tree for the child to attach: the source opened (beneath
    /// `within` with openat2 RESOLVE_BENEATH when the mount names one), its tree cloned with every submount,
    /// and the whole tree made nosuid, nodev, and read-only unless the mount says otherwise.
    static func openSources(_ spec: SandboxSpec) throws(SandboxError) -> [OwnedFileDescriptor] {
        var trees: [OwnedFileDescriptor] = []
        for mount in spec.mounts {
            do {
                let source =
                    if let within = mount.within {
                        try OwnedFileDescriptor.open(mount.source, beneath: within, O_PATH_FLAG)
                    } else {
                        try OwnedFileDescriptor.open(mount.source, O_PATH_FLAG)
                    }
                let tree = try DetachedMount.clone(source, path: mount.source)
                let flags = DetachedMount.noSUID | DetachedMount.noDev | (mount.readOnly ? DetachedMount.readOnly : 0)
                try DetachedMount.setAttributes(tree, flags, path: mount.source)
                trees.append(tree)
            } catch { throw .syscall(error) }
        }
        return trees
    }

    /// Makes the rootfs ready for the steps: /proc, /dev, /tmp as real directories, and /etc/hosts,
    /// /etc/hostname, /etc/resolv.conf written for this instance. A symlink in the image at one of these
    /// places is replaced, never followed.
    static func prepare(_ spec: SandboxSpec) throws(SandboxError) {
        let root: OwnedFileDescriptor
        do { root = try .open(spec.rootfs, O_RDONLY | O_DIRECTORY) } catch { throw .syscall(error) }
        let rootFD = root.rawValue
        for dir in ["proc", "dev", "tmp", "etc"] { try ensureDirectory(rootFD, dir, rootfs: spec.rootfs) }
        for mount in spec.mounts { try prepareMountPoint(rootFD, mount, rootfs: spec.rootfs) }
        let etc = openat(rootFD, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if etc < 0 { throw .syscall(.current("openat", path: "\(spec.rootfs)/etc")) }
        defer { close(etc) }
        let files = [
            "hostname": "\(spec.hostname)\n",
            "hosts": "127.0.0.1\tlocalhost \(spec.hostname)\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            "resolv.conf": spec.network == .host ? hostResolvConf() : "",
        ]
        for (name, content) in files { try replaceFile(etc, name, content, path: "\(spec.rootfs)/etc/\(name)") }
    }

    /// Creates the mount point of `mount` inside the rootfs: each parent a real directory (made if missing, an
    /// image's symlink refused), the last component a directory or an empty file like the source.
    private static func prepareMountPoint(_ rootFD: CInt, _ mount: SandboxSpec.Mount, rootfs: String) throws(SandboxError) {
        let parts = mount.target.split(separator: "/").map(String.init)
        guard mount.target.hasPrefix("/"), !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else {
            throw .invalidSpec("mount target \(mount.target) must be an absolute path without . or ..")
        }
        if let reason = SandboxSpec.Mount.refusedTarget(mount.target) {
            throw .invalidSpec("mount target \(mount.target): \(reason)")
        }
        var source = stat()
        if stat(mount.source, &source) != 0 { throw .syscall(.current("stat", path: mount.source)) }
        var dir = dup(rootFD)
        defer { close(dir) }
        for (index, name) in parts.enumerated() {
            let last = index == parts.count - 1
            if last && (source.st_mode & S_IFMT) != S_IFDIR {
                let fd = openat(dir, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
                if fd < 0 { throw .syscall(.current("openat", path: "\(rootfs)\(mount.target)")) }
                close(fd)
                return
            }
            if mkdirat(dir, name, 0o755) != 0 && errno != EEXIST {
                throw .syscall(.current("mkdirat", path: "\(rootfs)/\(parts[...index].joined(separator: "/"))"))
            }
            let next = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 { throw .syscall(.current("openat", path: "\(rootfs)/\(parts[...index].joined(separator: "/"))")) }
            close(dir)
            dir = next
        }
    }

    private static func ensureDirectory(_ rootFD: CInt, _ name: String, rootfs: String) throws(SandboxError) {
        var st = stat()
        if fstatat(rootFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { return }
            if unlinkat(rootFD, name, 0) != 0 { throw .syscall(.current("unlinkat", path: "\(rootfs)/\(name)")) }
        }
        if mkdirat(rootFD, name, 0o755) != 0 && errno != EEXIST {
            throw .syscall(.current("mkdirat", path: "\(rootfs)/\(name)"))
        }
    }

    private static func replaceFile(_ dir: CInt, _ name: String, _ content: String, path: String) throws(SandboxError) {
        if unlinkat(dir, name, 0) != 0 && errno != ENOENT {
            if errno == EISDIR { return }  // an image that ships a directory there keeps it
            throw .syscall(.current("unlinkat", path: path))
        }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd < 0 { throw .syscall(.current("openat", path: path)) }
        defer { close(fd) }
        let n = content.withCString { Glibc.write(fd, $0, strlen($0)) }
        if n < 0 { throw .syscall(.current("write", path: path)) }
    }

    private static func hostResolvConf() -> String {
        (try? FileSystem.read("/etc/resolv.conf", limit: 65536)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}
