import ArgumentParser
import Foundation
import Service

/// `faasbox credentials`: the keys that may sign requests to `faasbox serve --listen` (kept in the state dir,
/// mode 0600; the server reads them as they change, no restart needed).
struct Credentials: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keys for signed requests over TCP (TC3-HMAC-SHA256): create, list, delete.",
        subcommands: [Create.self, List.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new SecretId and SecretKey; the key is printed once, here, and never again.")
        @Flag(help: "Print {\"SecretId\": …, \"SecretKey\": …}.") var json = false
        @OptionGroup var state: StateOptions

        func run() throws {
            let credential: CredentialStore.Credential
            do { credential = try state.credentials().create() } catch { fail("cannot save the key: \(error)") }
            if json {
                printJSON(["SecretId": credential.SecretId, "SecretKey": credential.SecretKey])
            } else {
                print("SecretId:  \(credential.SecretId)\nSecretKey: \(credential.SecretKey)")
                FileHandle.standardError.write(
                    Data(
                        "faasbox: use them as TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (or --secret-id/--secret-key); the key is not shown again\n"
                            .utf8))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The SecretIds (never the keys) and when each was made.")
        @Flag(help: "Print a JSON array.") var json = false
        @OptionGroup var state: StateOptions

        func run() throws {
            let all: [CredentialStore.Credential]
            do { all = try state.credentials().all() } catch { fail("cannot read the keys: \(error)") }
            let formatter = ISO8601DateFormatter()
            if json {
                printJSON(all.map { ["SecretId": $0.SecretId, "CreatedAt": formatter.string(from: $0.CreatedAt)] })
            } else {
                print("SECRETID".padding(toLength: 40, withPad: " ", startingAt: 0) + "CREATED")
                for c in all {
                    print(c.SecretId.padding(toLength: 40, withPad: " ", startingAt: 0) + formatter.string(from: c.CreatedAt))
                }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a key: requests signed with it are refused from now on.")
        @Argument(help: "The SecretId.") var id: String
        @OptionGroup var state: StateOptions

        func run() throws {
            let removed: Bool
            do { removed = try state.credentials().delete(id) } catch { fail("cannot update the keys: \(error)") }
            guard removed else { fail("no key has the SecretId \(id)") }
            print("deleted \(id)")
        }
    }
}

extension StateOptions {
    /// The state dir's keys (the directory made, owner only, if it is not there yet).
    func credentials() throws -> CredentialStore {
        try FileManager.default.createDirectory(
            atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return CredentialStore(stateDir: stateDir)
    }
}
