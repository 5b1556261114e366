import CSpawn
import Synchronization
import SystemSupport

extension SandboxSpec.UserNamespace {
    /// A user namespace with this mapping, held by a descriptor: what an idmapped mount takes, so that files
    /// stored as owned by host root read, inside an instance with this mapping, as owned by its root. Made
    /// once per mapping for the life of the process (a helper process, then the maps; about 0.3 ms) and kept:
    /// at most `UserNamespaceDescriptors.capacity` of them.
    public func descriptor() throws(SandboxError) -> OwnedFileDescriptor {
        try UserNamespaceDescriptors.shared.descriptor(mapLine)
    }
}

/// The user namespaces made for idmapped mounts, by mapping.
final class UserNamespaceDescriptors: Sendable {
    static let shared = UserNamespaceDescriptors()
    static let capacity = 1024
    private let made = Mutex<[String: OwnedFileDescriptor]>([:])

    func descriptor(_ mapLine: String) throws(SandboxError) -> OwnedFileDescriptor {
        if let known = made.withLock({ $0[mapLine] }) { return known }
        let fd = fb_userns_create(mapLine)
        if fd < 0 { throw .syscall(.negated("clone(CLONE_NEWUSER) for an id mapping", fd)) }
        let descriptor = OwnedFileDescriptor(rawValue: fd)
        return made.withLock { made in
            if let raced = made[mapLine] { return raced }
            if made.count >= Self.capacity, let any = made.keys.first { made[any] = nil }
            made[mapLine] = descriptor
            return descriptor
        }
    }
}
