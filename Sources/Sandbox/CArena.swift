#if canImport(Glibc)
    import Glibc
#endif

/// C strings and arrays that must stay put while the C spawn code reads them; freed all at once.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func string(_ s: String?) -> UnsafeMutablePointer<CChar>? { s.map { string($0) } }

    /// A NULL-terminated array of C strings (argv, envp).
    func stringArray(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (i, s) in strings.enumerated() { array[i] = string(s) }
        array[strings.count] = nil
        allocations.append(UnsafeMutableRawPointer(array))
        return array
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    deinit { for p in allocations { free(p) } }
}
