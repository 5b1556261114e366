import CSyscalls
import SystemPackage

/// Extended attributes of an open file (fsetxattr(2), fgetxattr(2)).
public enum ExtendedAttribute {
    public static func set(_ file: FileDescriptor, _ name: String, _ value: [UInt8]) throws(SystemCallError) {
        let rc = value.withUnsafeBytes { fb_fsetxattr(file.rawValue, name, $0.baseAddress, UInt($0.count)) }
        if rc != 0 { throw .negated("fsetxattr(\(name))", rc) }
    }

    /// The value of `name`, at most `capacity` bytes of it; nil when the file has none (or it is longer).
    public static func get(_ file: FileDescriptor, _ name: String, capacity: Int = 256) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: capacity)
        let n = value.withUnsafeMutableBytes { fb_fgetxattr(file.rawValue, name, $0.baseAddress, UInt($0.count)) }
        return n < 0 ? nil : Array(value[0..<Int(n)])
    }
}
