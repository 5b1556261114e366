import CSyscalls
import SystemPackage

/// Special files made with mknodat(2): device nodes and fifos of image layers, and overlayfs whiteouts.
public enum DeviceNode {
    /// Makes `name` in `directory` with `mode` (its S_IF* type and permission bits) and a (major, minor) device.
    public static func make(
        in directory: FileDescriptor, _ name: String, mode: UInt32, major: UInt32, minor: UInt32
    ) throws(SystemCallError) {
        let rc = fb_mknodat(directory.rawValue, name, mode, major, minor)
        if rc != 0 { throw .negated("mknodat", path: name, rc) }
    }

    /// Makes the overlayfs whiteout `name` (a 0/0 character device) in `directory`: it hides `name` of the
    /// layers below.
    public static func whiteout(in directory: FileDescriptor, _ name: String) throws(SystemCallError) {
        let rc = fb_mknod_whiteout(directory.rawValue, name)
        if rc != 0 { throw .negated("mknodat(whiteout)", path: name, rc) }
    }
}
