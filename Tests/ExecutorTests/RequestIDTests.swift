import Foundation
import Testing

@testable import Executor

struct RequestIDTests {
    @Test func idsAreVersion7UUIDsInLowercase() throws {
        let ids = (0..<1000).map { _ in RequestID.make() }
        #expect(Set(ids).count == ids.count, "no two alike")
        for id in ids {
            #expect(id.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(id)")
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id, "Foundation reads it back: \(id)")
        }
    }

    /// The first 48 bits are the Unix time in milliseconds, so ids made later sort later (what keeps the log
    /// index's inserts at its end).
    @Test func idsCarryTheTimeAndSortByIt() async throws {
        let first = RequestID.make()
        try await Task.sleep(for: .milliseconds(5))
        let second = RequestID.make()
        #expect(first < second)
        let hex = second.replacingOccurrences(of: "-", with: "").prefix(12)
        let milliseconds = try #require(UInt64(hex, radix: 16))
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        #expect(milliseconds <= now && now - milliseconds < 5_000, "\(milliseconds) vs \(now)")
    }

    @Test func theBitsAreWrittenInOrderWithVersionAndVariantSet() {
        #expect(RequestID.format(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210) == "01234567-89ab-7def-bedc-ba9876543210")
        #expect(RequestID.format(0, 0) == "00000000-0000-7000-8000-000000000000")
        #expect(RequestID.format(.max, .max) == "ffffffff-ffff-7fff-bfff-ffffffffffff")
    }
}
