import Foundation
import Sandbox

/// The seccomp filter of a function's instances: the default profile (modelled on Docker's), or one given as
/// JSON in the form `faasbox seccomp-profile` prints.
public struct SeccompPolicy: Sendable, Equatable {
    let profile: SeccompProfile

    public static let `default` = SeccompPolicy(profile: .default)

    /// Reads a profile from its JSON; throws the decoder's error, which names the field.
    public init(json: Data) throws {
        profile = try JSONDecoder().decode(SeccompProfile.self, from: json)
    }

    init(profile: SeccompProfile) { self.profile = profile }

    /// The same filter, but what it would deny is logged (kernel audit log / dmesg) and allowed.
    public var loggingOnly: SeccompPolicy { SeccompPolicy(profile: profile.loggingOnly) }

    /// The profile as JSON (pretty-printed, keys sorted).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // A SeccompProfile is strings, numbers and enums: encoding it cannot fail.
        return String(decoding: (try? encoder.encode(profile)) ?? Data(), as: UTF8.self)
    }
}
