#if canImport(Glibc)
    import Glibc
#endif

/// Request ids: time-ordered (version 7, RFC 9562) UUIDs in lowercase — the Unix time in milliseconds, then 74
/// random bits from the system's generator (getrandom(2); Foundation's `UUID()` opened and read /dev/urandom
/// for every one). Ordered by time, each function's new log rows land at the end of the database's
/// request-id index: with random (version 4) ids every batch of 256 log rows dirtied ~256 scattered index pages,
/// 2–4 ms of SQLite work that took a CPU from the warm path (the p99 tail). They read as any UUID does.
enum RequestID {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = UInt64(now.tv_sec) &* 1000 &+ UInt64(now.tv_nsec / 1_000_000)
        return format(milliseconds << 16 | generator.next() & 0xFFF, generator.next())
    }

    /// The UUID of the 128 bits `high`, `low` with the version (7) and variant (10xx) bits set, as text
    /// (8-4-4-4-12 hex digits).
    static func format(_ high: UInt64, _ low: UInt64) -> String {
        let high = (high & ~0xF000) | 0x7000
        let low = (low & ~(0x3 << 62)) | (0x2 << 62)
        return String(unsafeUninitializedCapacity: 36) { out in
            var i = 0
            for nibble in 0..<32 {
                if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                    out[i] = UInt8(ascii: "-")
                    i += 1
                }
                let word = nibble < 16 ? high : low
                let value = UInt8((word >> UInt64(60 - 4 * (nibble % 16))) & 0xF)
                out[i] = value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
                i += 1
            }
            return i
        }
    }
}
