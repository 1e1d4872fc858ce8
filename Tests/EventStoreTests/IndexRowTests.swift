import Testing
@testable import EventStore

/// The index's values are varints: every field round-trips, and a row that is not exactly
/// the expected number of varints is refused (damage), never read as other numbers.
@Suite struct IndexRowTests {
    static func encode(_ f0: Int64, _ f1: Int64, _ f2: Int64?) -> [UInt8] {
        var value: [UInt8] = [9, 9, 9]  // replaced, not appended to
        IndexRow.encodeValue(f0, f1, f2, into: &value)
        return value
    }

    static func decode(_ row: [UInt8], count: Int) -> (Int64, Int64, Int64)? {
        row.withUnsafeBytes { IndexRow.fields($0, count: count) }
    }

    @Test(arguments: [(Int64(0), Int64(0), Int64(1)), (7, 127, 128), (3, 1 << 40, 16_383), (Int64.max, Int64.max, Int64.max)])
    func fieldsRoundTrip(f0: Int64, f1: Int64, f2: Int64) {
        let three = Self.encode(f0, f1, f2)
        #expect(Self.decode(three, count: 3).map { [$0.0, $0.1, $0.2] } == [f0, f1, f2])
        let two = Self.encode(f0, f1, nil)
        #expect(Self.decode(two, count: 2).map { [$0.0, $0.1, $0.2] } == [f0, f1, 0])
        #expect(three.count <= IndexRow.maxValueBytes)
    }

    @Test func smallFieldsTakeAByteEach() {
        #expect(Self.encode(2, 100, 1) == [2, 100, 1])
    }

    @Test func rowsOfTheWrongShapeAreRefused() {
        let row = Self.encode(5, 300, 2)
        #expect(Self.decode(row, count: 2) == nil, "a trailing field")
        #expect(Self.decode(Array(row.dropLast()), count: 3) == nil, "a missing field")
        #expect(Self.decode(row + [0], count: 3) == nil, "a trailing byte")
        #expect(Self.decode([0x80, 0x80], count: 2) == nil, "a varint that never ends")
        #expect(Self.decode(Array(repeating: 0xFF, count: 9) + [0x01], count: 1) == nil, "a field past Int64.max")
        #expect(Self.decode(Array(repeating: 0, count: 24), count: 3) == nil, "a fixed-width row of format 3")
    }
}
