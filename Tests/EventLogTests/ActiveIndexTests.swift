import Foundation
import Testing
@testable import EventLog

/// The active segment's index hint (`.activeindex`) makes opens walk only the tail, and a
/// missing, stale or damaged hint changes nothing but the cost.
@Suite struct ActiveIndexTests {
    /// Offsets found for a set of timestamps, and records read from a set of offsets.
    private func probe(_ path: String) async throws -> ([Int64?], [[Record]]) {
        let log = try await WriteAheadLog.open(at: path, options: options(writable: false))
        let end = try log.endOffset(partition: 0)
        #expect(end == 3_000)
        let times = try stride(from: Int64(0), to: 3_100, by: 97).map { i in
            try log.offset(partition: 0, atOrAfterTimestamp: sampleRecord(Int(min(i, 2_999))).timestamp + (i >= 3_000 ? 1 : 0))
        }
        let reads = try [0, 1, 777, 1_500, 2_345, 2_999].map { try readAll(log, from: Int64($0)) }
        try await log.close()
        return (times, reads)
    }

    @Test func hintsChangeOnlyTheCostOfOpening() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<3_000, batchSize: 10)
        try await log.close()
        let segment = segmentFiles(dir.path)[0]
        let hint = String(segment.dropLast(SegmentFile.logExtension.count)) + SegmentFile.activeIndexExtension
        let original = readFile(hint)
        #expect(!original.isEmpty, "the writer saved a hint at its recovery points")
        let expected = try await probe(dir.path)
        #expect(expected.1[0] == (0..<3_000).map(sampleRecord))

        try FileManager.default.removeItem(atPath: hint)
        let withoutHint = try await probe(dir.path)
        #expect(withoutHint.0 == expected.0 && withoutHint.1 == expected.1)

        var random = SeededRandom(seed: 12)
        for round in 0..<30 {
            var damaged = original
            switch round % 3 {
            case 0: damaged = Array(original.prefix(Int.random(in: 0..<original.count, using: &random)))
            default:
                for _ in 0..<(1 + round % 4) {
                    let at = Int.random(in: 0..<damaged.count, using: &random)
                    damaged[at] ^= UInt8.random(in: 1...255, using: &random)
                }
            }
            writeFile(hint, damaged)
            let seen = try await probe(dir.path)
            #expect(seen.0 == expected.0 && seen.1 == expected.1, "round \(round): a damaged hint changed what the log holds")
        }
    }
}
