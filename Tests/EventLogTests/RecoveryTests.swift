import Foundation
import Testing
@testable import EventLog

@Suite struct RecoveryTests {
    /// Writes a log with several sealed segments and returns the records.
    private func writeSealedLog(_ path: String, count: Int = 2_000) async throws -> [Record] {
        let log = try await WriteAheadLog.open(at: path, options: options(segmentBytes: 64 << 10))
        try await appendSamples(log, 0..<count, batchSize: 10)
        try await log.close()
        return (0..<count).map(sampleRecord)
    }

    @Test func flippingAnyByteOfASealedSegmentIsDetectedWithItsOffset() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = try await writeSealedLog(dir.path)
        let sealed = segmentFiles(dir.path)[0]
        let original = readFile(sealed)
        // Batch start positions, to check that the error names the damaged batch.
        var starts: [Int64] = []
        _ = try SegmentInspector.inspect(path: sealed) { entry in
            if case let .batch(_, position, _, _, _) = entry { starts.append(position) }
        }
        var random = SeededRandom(seed: 4)
        for _ in 0..<200 {
            let at = Int.random(in: 0..<original.count, using: &random)
            var damaged = original
            damaged[at] ^= UInt8.random(in: 1...255, using: &random)
            writeFile(sealed, damaged)
            let log = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
            do {
                _ = try readAll(log)
                Issue.record("flipped byte at \(at) was not detected")
            } catch let error as LogError {
                guard case let .corrupt(path, offset, _) = error else { Issue.record("byte \(at): \(error)"); continue }
                #expect(path == sealed)
                let batchStart = starts.last { $0 <= Int64(at) } ?? 0
                #expect(offset == batchStart, "byte \(at) lies in the batch at \(batchStart), error said \(offset): \(error)")
            }
        }
        writeFile(sealed, original)
    }

    @Test func truncatingTheLastSegmentAnywhereRecoversACleanPrefix() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<300, batchSize: 3)
        try await log.close()
        let segment = segmentFiles(dir.path)[0]
        let original = readFile(segment)
        let recoveryPoint = dir.path + "/partition-0000/recovery-point"
        var random = SeededRandom(seed: 7)
        for _ in 0..<60 {
            let cut = Int.random(in: 0...original.count, using: &random)
            writeFile(segment, Array(original[0..<cut]))
            // Without a recovery point (as after a crash before the first checkpoint).
            try? FileManager.default.removeItem(atPath: recoveryPoint)
            let reopened = try await WriteAheadLog.open(at: dir.path, options: options())
            let records = try readAll(reopened)
            #expect(records == Array((0..<300).map(sampleRecord).prefix(records.count)))
            let size = Int(readFile(segment).count)
            #expect(size <= cut)
            if cut < original.count && records.count < 300 && size < cut {
                #expect(reopened.recoveryEvents.count == 1)
                #expect(reopened.recoveryEvents.first?.offset == Int64(size))
                // Counted up to the last non-zero byte: zero-filled space is not data.
                let dropped = reopened.recoveryEvents.first?.bytesDropped ?? -1
                #expect(dropped > 0 && dropped <= Int64(cut - size))
            }
            // The log takes appends again, right after the prefix.
            let ack = try await appendSamples(reopened, records.count..<(records.count + 1), batchSize: 1)
            #expect(ack.first?.baseOffset == Int64(records.count))
            try await reopened.close()
            writeFile(segment, original)
        }
    }

    @Test func garbageAfterTheLastBatchIsTruncatedAndReported() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<100, batchSize: 10)
        try await log.close()
        let segment = segmentFiles(dir.path)[0]
        let good = readFile(segment)
        // A half-written batch: a valid header copied from the first batch, then junk.
        writeFile(segment, good + Array(good[0..<BatchHeader.size]) + [UInt8](repeating: 0x5A, count: 500))
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
        #expect(try readAll(reader).count == 100, "readers stop before an unverified tail")
        #expect(readFile(segment).count == good.count + BatchHeader.size + 500, "a read-only open changes nothing")
        let reopened = try await WriteAheadLog.open(at: dir.path, options: options())
        #expect(reopened.recoveryEvents.count == 1)
        let event = try #require(reopened.recoveryEvents.first)
        #expect(event.path == segment)
        #expect(event.offset == Int64(good.count))
        #expect(event.bytesDropped == Int64(BatchHeader.size + 500))
        #expect(event.description.contains("torn tail"))
        #expect(try readAll(reopened) == (0..<100).map(sampleRecord))
        try await reopened.close()
        #expect(readFile(segment).count == good.count)
    }

    @Test func corruptionBeforeTheRecoveryPointIsAnErrorNotATail() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<100, batchSize: 10)
        try await log.close()
        let segment = segmentFiles(dir.path)[0]
        var bytes = readFile(segment)
        // Break the length of the first batch: the walk to the recovery point cannot proceed.
        bytes[5] ^= 0x40
        writeFile(segment, bytes)
        do {
            _ = try await WriteAheadLog.open(at: dir.path, options: options())
            Issue.record("corruption of acknowledged data must fail the open")
        } catch let error as LogError {
            guard case let .corrupt(path, offset, _) = error else { Issue.record("\(error)"); return }
            #expect(path == segment)
            #expect(offset == 0)
        }
        // Nothing was truncated.
        #expect(readFile(segment).count == bytes.count)
    }

    @Test func truncatedSealedSegmentIsDetected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = try await writeSealedLog(dir.path)
        let sealed = segmentFiles(dir.path)[1]
        let bytes = readFile(sealed)
        writeFile(sealed, Array(bytes[0..<(bytes.count - 100)]))
        let log = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
        #expect(throws: LogError.self) { _ = try readAll(log) }
    }

    @Test func damagedOrMissingIndexesAreRebuilt() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let records = try await writeSealedLog(dir.path)
        let segments = segmentFiles(dir.path)
        let first = String(segments[0].dropLast(4))
        let second = String(segments[1].dropLast(4))
        try FileManager.default.removeItem(atPath: first + ".index")
        var garbled = readFile(second + ".index")
        for i in stride(from: 0, to: garbled.count, by: 3) { garbled[i] = 0xEE }
        writeFile(second + ".index", garbled)
        // A plausible but wrong index: entries shifted to positions that are not batch starts.
        let third = String(segments[2].dropLast(4))
        var shifted = readFile(third + ".index")
        if shifted.count >= 16 { shifted[12] &+= 1 }
        writeFile(third + ".index", shifted)
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        #expect(try readAll(log) == records)
        for start in [5, 333, 777, 1_500, 1_999] {
            #expect(try readAll(log, from: Int64(start)) == Array(records[start...]))
        }
        try await log.close()
        #expect(FileManager.default.fileExists(atPath: first + ".index"), "a writable open writes the rebuilt index")
    }

    @Test func missingSegmentNamedByTheRecoveryPointIsAnError() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = try await writeSealedLog(dir.path)
        let segments = segmentFiles(dir.path)
        try FileManager.default.removeItem(atPath: segments[segments.count - 1])
        await #expect(throws: LogError.self) { _ = try await WriteAheadLog.open(at: dir.path, options: options()) }
    }

    @Test func damagedManifestIsReportedClearly() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await log.close()
        var manifest = readFile(dir.path + "/MANIFEST")
        manifest[20] ^= 1
        writeFile(dir.path + "/MANIFEST", manifest)
        do {
            _ = try await WriteAheadLog.open(at: dir.path, options: options())
            Issue.record("a damaged manifest must not open")
        } catch let error as LogError {
            #expect(error.description.contains("MANIFEST"))
        }
    }

    @Test func restartReadsOnlyTheTailAfterTheRecoveryPoint() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<3_000, batchSize: 30)
        try await log.close()
        // Damage a payload byte early in the segment, before the recovery point: open
        // does not checksum there (only headers are walked), so it succeeds, and the
        // damage is reported when the batch is read.
        let segment = segmentFiles(dir.path)[0]
        var bytes = readFile(segment)
        bytes[BatchHeader.size + 10] ^= 0xFF
        writeFile(segment, bytes)
        let reopened = try await WriteAheadLog.open(at: dir.path, options: options())
        #expect(reopened.recoveryEvents.isEmpty)
        #expect(throws: LogError.self) { _ = try readAll(reopened) }
        try await reopened.close()
    }

    @Test func failedOpenReleasesEveryLockAndDoesNotHang() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 3))
        try await appendSamples(log, 0..<50, batchSize: 10, partition: 2)
        try await log.close()
        for segment in segmentFiles(dir.path, partition: 2) { try FileManager.default.removeItem(atPath: segment) }
        for _ in 0..<2 {
            do {
                _ = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 3))
                Issue.record("lost segments must fail the open")
            } catch let error as LogError {
                // The second attempt fails the same way: partitions 0 and 1 were unlocked.
                guard case .corrupt = error else { Issue.record("expected corruption, got \(error)"); return }
                #expect(error.description.contains("acknowledged data was lost"))
            }
        }
    }

    @Test func dataAfterAZeroGapIsReportedWhenDropped() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<20, batchSize: 10)
        try await log.close()
        let segment = segmentFiles(dir.path)[0]
        let good = readFile(segment)
        // As if a later unsynced write reached the disk before an earlier one.
        writeFile(segment, good + [UInt8](repeating: 0, count: 4096) + Array(good[0..<300]))
        let reopened = try await WriteAheadLog.open(at: dir.path, options: options())
        #expect(reopened.recoveryEvents.count == 1)
        #expect(reopened.recoveryEvents.first?.offset == Int64(good.count))
        #expect(try readAll(reopened).count == 20)
        try await reopened.close()
    }
}
