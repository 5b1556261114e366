/// Request ids: random (version 4) UUIDs in lowercase, as SCF writes them. Made from the system's random
/// generator (getrandom(2), one call each) — Foundation's `UUID()` opened and read /dev/urandom for every one,
/// three syscalls on each invocation's path.
enum RequestID {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return format(generator.next(), generator.next())
    }

    /// The UUID of the 128 bits `high`, `low` with the version (4) and variant (10xx) bits set, as text
    /// (8-4-4-4-12 hex digits).
    static func format(_ high: UInt64, _ low: UInt64) -> String {
        let high = (high & ~0xF000) | 0x4000
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
