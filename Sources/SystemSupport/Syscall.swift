#if canImport(Glibc)
    import Glibc
#endif

/// The one EINTR loop: `call` again while it fails with EINTR (a signal arrived before it did anything).
public enum Syscall {
    /// Runs `call` until it returns something other than a negative result with errno EINTR; returns that.
    @inline(__always)
    public static func retrying<Result: BinaryInteger>(_ call: () -> Result) -> Result {
        while true {
            let result = call()
            if result < 0 && Glibc.errno == EINTR { continue }
            return result
        }
    }
}
