import CCap

/// Capability names and numbers, as libcap knows them (it knows every capability of the running kernel).
public enum Capabilities {
    /// The number of a capability named like "CAP_NET_BIND_SERVICE" or "net_bind_service".
    public static func number(named name: String) throws(SandboxError) -> Int {
        var value: cap_value_t = 0
        let lower = name.lowercased()
        let full = lower.hasPrefix("cap_") ? lower : "cap_" + lower
        guard cap_from_name(full, &value) == 0 else { throw .invalidSpec("unknown capability \"\(name)\"") }
        return Int(value)
    }

    /// The libcap name of capability `number` ("cap_chown"…).
    public static func name(of number: Int) -> String {
        guard let text = cap_to_name(cap_value_t(number)) else { return "cap_\(number)" }
        defer { cap_free(text) }
        return String(cString: text)
    }
}
