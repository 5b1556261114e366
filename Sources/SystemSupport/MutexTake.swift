import Synchronization

extension Mutex {
    /// Removes and returns the value of a mutex that holds an optional one.
    public borrowing func take<Wrapped>() -> Wrapped? where Value == Wrapped? {
        withLock { value in
            defer { value = nil }
            return value
        }
    }
}
