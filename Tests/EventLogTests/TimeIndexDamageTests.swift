import Foundation
import Testing
@testable import EventLog

/// Issue 17, item 2: a flipped byte in a sealed segment's `.timeindex` (its sentinel made
/// `audit as-of` count 2,047 requests instead of 1,862) or `.index` must not move an
/// answer. The pair carries a CRC32C: a damaged pair is rebuilt from the segment.
@Suite struct TimeIndexDamageTests {
    @Test func aFlippedIndexByteNeverMovesATimeLookup() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var writable = options(segmentBytes: 64 << 10)
        writable.indexIntervalBytes = 2_048
        let log = try await WriteAheadLog.open(at: dir.path, options: writable)
        try await appendSamples(log, 0..<3_000, batchSize: 20)
        try await log.close()
        let partition = dir.path + "/" + WriteAheadLog.partitionDirectoryName(0)
        let indexFiles = try FileManager.default.contentsOfDirectory(atPath: partition)
            .filter { $0.hasSuffix(".timeindex") || $0.hasSuffix(".index") }.sorted()
        #expect(indexFiles.count >= 4, "several sealed segments with index files: \(indexFiles)")
        // The offset of the first record at or after each time, on the intact log.
        let times = stride(from: Int64(-5), through: 3_100, by: 37).map { 1_700_000_000_000_000 + $0 * 1_000 }
        func answers() async throws -> [Int64?] {
            var readOnly = writable
            readOnly.writable = false
            let reader = try await WriteAheadLog.open(at: dir.path, options: readOnly)
            return try times.map { try reader.offset(partition: 0, atOrAfterTimestamp: $0) }
        }
        let expected = try await answers()
        #expect(expected.contains(nil) && expected.contains(0) && expected.contains { ($0 ?? 0) > 2_000 }, "\(expected)")
        var flips = 0
        for name in indexFiles {
            let path = partition + "/" + name
            let pristine = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            // The sentinel's timestamp (the last entry before the checksum), then spread.
            let sentinel = name.hasSuffix(".timeindex") ? [pristine.count - 16, pristine.count - 10] : []
            for position in sentinel + stride(from: 0, to: pristine.count, by: max(1, pristine.count / 12)) {
                var bytes = pristine
                bytes[position] ^= 0x40
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                #expect(try await answers() == expected, "\(name) byte \(position) of \(pristine.count) flipped")
                flips += 1
            }
            try Data(pristine).write(to: URL(fileURLWithPath: path))
        }
        #expect(flips >= 50)
    }
}
