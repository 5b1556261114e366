import Foundation
import Testing

@testable import Executor

struct RequestIDTests {
    @Test func idsAreVersion4UUIDsInLowercase() throws {
        let ids = (0..<1000).map { _ in RequestID.make() }
        #expect(Set(ids).count == ids.count, "no two alike")
        for id in ids {
            #expect(id.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(id)")
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id, "Foundation reads it back: \(id)")
        }
    }

    @Test func theBitsAreWrittenInOrderWithVersionAndVariantSet() {
        #expect(RequestID.format(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210) == "01234567-89ab-4def-bedc-ba9876543210")
        #expect(RequestID.format(0, 0) == "00000000-0000-4000-8000-000000000000")
        #expect(RequestID.format(.max, .max) == "ffffffff-ffff-4fff-bfff-ffffffffffff")
    }
}
