import Foundation
import Testing
@testable import EventLog

@Suite struct RoundTripTests {
    @Test func crc32cKnownAnswer() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        // Checksumming in pieces gives the same result.
        let whole = CRC32C.checksum(Array("hello, write-ahead log".utf8))
        let piece = CRC32C.checksum(Array(", write-ahead log".utf8), continuing: CRC32C.checksum(Array("hello".utf8)))
        #expect(whole == piece)
    }

    @Test(arguments: Codec.allCases)
    func everyCodecRoundTripsBatchesFromOneRecordToTheMaximum(codec: Codec) async throws {
        let dir = TemporaryDirectory("codec\(codec)")
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(codec: codec))
        // 1 record, a typical batch, and the largest batch the format allows.
        var expected: [Record] = []
        var next = 0
        for size in [1, 2, 1_000, Limits.maxRecordsPerBatch] {
            var batch = RecordBatchBuilder()
            for i in next..<(next + size) {
                let record = Record(offset: Int64(i), timestamp: Int64(i), key: Array("k\(i % 7)".utf8), value: Array("v\(i)".utf8))
                try batch.append(key: record.key, value: record.value, timestamp: record.timestamp)
                expected.append(record)
            }
            let ack = try await log.append(batch, partition: 0)
            #expect(ack.baseOffset == Int64(next))
            #expect(ack.recordCount == size)
            #expect(ack.durability == .fsync)
            next += size
        }
        #expect(try readAll(log) == expected)
        try await log.close()
        let reopened = try await WriteAheadLog.open(at: dir.path, options: options(codec: codec))
        #expect(reopened.recoveryEvents.isEmpty)
        #expect(try readAll(reopened) == expected)
        try await reopened.close()
    }

    @Test func batchBeyondTheMaximumIsRejected() throws {
        var batch = RecordBatchBuilder()
        for i in 0..<Limits.maxRecordsPerBatch { try batch.append(key: [], value: [UInt8(i & 0xFF)], timestamp: 0) }
        #expect(throws: LogError.self) { try batch.append(key: [], value: [1], timestamp: 0) }
    }

    @Test func emptyBatchIsRejected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        await #expect(throws: LogError.self) { try await log.append(RecordBatchBuilder(), partition: 0) }
        await #expect(throws: LogError.self) { try await log.append(RecordBatchBuilder(), partition: 5) }
        try await log.close()
    }

    /// A batch queued uncompressed is stored the same whoever compresses it: its appender
    /// before the writer gets there, another task racing the writer, or — when the appender
    /// never does — the writer itself (which must not wait for it).
    @Test func queuedBatchesAreCompressedByWhoeverGetsThereFirst() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, codec: .zstd))
        var tickets: [(AppendTicket, Int64)] = []
        var expected: [[Record]] = [[], []]
        for i in 0..<90 {
            var batch = RecordBatchBuilder()
            let partition = i % 2, base = Int64(expected[partition].count)
            for j in 0..<40 {
                let record = Record(offset: base + Int64(j), timestamp: Int64(1_000 + i), key: Array("k\(j)".utf8), value: sampleValue(i * 40 + j))
                try batch.append(key: record.key, value: record.value, timestamp: record.timestamp)
                expected[partition].append(record)
            }
            let (ticket, queued) = try log.queue(batch, partition: partition, expectedBaseOffset: base)
            switch i % 3 {
            case 0: queued.compress()
            case 1: Task.detached { queued.compress() }
            default: break
            }
            tickets.append((ticket, base))
        }
        for (ticket, base) in tickets { #expect(try await ticket.acknowledgement().baseOffset == base) }
        for partition in 0..<2 {
            var cursor = try log.cursor(partition: partition, from: 0)
            var read: [Record] = []
            while let batch = try cursor.next() { read += batch.recordList() }
            #expect(read == expected[partition], "partition \(partition)")
        }
        try await log.close()
    }

    /// Compressing a queued batch twice, or after the writer did, changes nothing: the bytes
    /// are those of compressing it once.
    @Test func aQueuedBatchIsCompressedOnce() throws {
        var builder = RecordBatchBuilder()
        for j in 0..<100 { try builder.append(key: Array("k".utf8), value: sampleValue(j), timestamp: 5) }
        var direct = try builder.encoded(codec: .zstd, segmentBytes: 64 << 20)
        #expect(!direct.isCompressed)
        try direct.compress()
        let queued = QueuedBatch(try builder.encoded(codec: .zstd, segmentBytes: 64 << 20))
        queued.compress()
        queued.compress()
        #expect(try queued.compressed().bytes == direct.bytes)
        #expect(queued.queuedBytes == builder.byteCount && queued.maxLength >= direct.bytes.count)
    }

    /// Writers compress the batches they are given, but the size rule is the compressed
    /// size's: a batch whose records would overflow a segment and which compresses to fit
    /// one is stored, and one that does not fit even compressed is refused with its size —
    /// before anything is queued, so the partition keeps working.
    @Test func aBatchFitsASegmentByItsCompressedSize() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let segment = Limits.minSegmentBytes
        let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: segment, codec: .zstd))
        var repetitive = RecordBatchBuilder()
        for _ in 0..<40 { try repetitive.append(key: Array("k".utf8), value: [UInt8](repeating: 7, count: 4_000), timestamp: 1) }
        #expect(repetitive.byteCount > segment)
        let stored = try await log.append(repetitive, partition: 0)
        #expect(stored.baseOffset == 0 && stored.recordCount == 40)

        var noise = RecordBatchBuilder(), x: UInt64 = 1
        for _ in 0..<20 {
            let value = (0..<4_000).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: x >> 56) }
            try noise.append(key: Array("k".utf8), value: value, timestamp: 1)
        }
        await #expect {
            try await log.append(noise, partition: 0)
        } throws: { error in
            "\(error)".contains("does not fit in a segment of \(segment) bytes")
        }
        var small = RecordBatchBuilder()
        try small.append(key: Array("k".utf8), value: sampleValue(1), timestamp: 2)
        #expect(try await log.append(small, partition: 0).baseOffset == 40)
        var cursor = try log.cursor(partition: 0, from: 0)
        var read: [Record] = []
        while let batch = try cursor.next() { read += batch.recordList() }
        #expect(read.count == 41 && read[0].value == [UInt8](repeating: 7, count: 4_000) && read[40].value == sampleValue(1))
        try await log.close()
    }

    @Test func readsByOffsetAcrossSegmentBoundaries() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10, codec: .none))
        try await appendSamples(log, 0..<3_000, batchSize: 7)
        #expect(segmentFiles(dir.path).count > 5, "small segments must roll")
        let all = try readAll(log)
        #expect(all.count == 3_000)
        #expect(all.map(\.offset) == (0..<3_000).map(Int64.init))
        #expect(all == (0..<3_000).map(sampleRecord))
        // From any offset, the read starts exactly there, whatever segment holds it.
        for start in [0, 1, 6, 7, 500, 1_234, 2_999, 3_000] {
            let tail = try readAll(log, from: Int64(start))
            #expect(tail.first?.offset ?? 3_000 == Int64(start))
            #expect(tail.count == 3_000 - start)
        }
        #expect(throws: LogError.self) { _ = try log.cursor(partition: 0, from: 3_001) }
        try await log.close()
        // After reopening, sealed segments are read through their index files.
        let reopened = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10, codec: .none, writable: false))
        #expect(try readAll(reopened, from: 2_500).count == 500)
        try await reopened.close()
    }

    @Test func readsByTimeAcrossSegmentBoundaries() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10))
        try await appendSamples(log, 0..<2_000, batchSize: 13)
        #expect(segmentFiles(dir.path).count > 1)
        for i in [0, 1, 12, 13, 999, 1_999] {
            #expect(try log.offset(partition: 0, atOrAfterTimestamp: sampleRecord(i).timestamp) == Int64(i))
            // Between two records' times: the later one.
            #expect(try log.offset(partition: 0, atOrAfterTimestamp: sampleRecord(i).timestamp - 1) == Int64(i))
        }
        #expect(try log.offset(partition: 0, atOrAfterTimestamp: sampleRecord(1_999).timestamp + 1) == nil)
        #expect(try log.offset(partition: 0, atOrAfterTimestamp: .min) == 0)
        try await log.close()
    }

    @Test func offsetsContinueDenselyAfterReopen() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        for round in 0..<3 {
            let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10))
            #expect(log.recoveryEvents.isEmpty)
            let acks = try await appendSamples(log, (round * 500)..<((round + 1) * 500), batchSize: 50)
            #expect(acks.first?.baseOffset == Int64(round * 500))
            try await log.close()
        }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
        #expect(try readAll(log) == (0..<1_500).map(sampleRecord))
        #expect(try log.endOffset(partition: 0) == 1_500)
    }

    @Test func concurrentAppendersShareGroupCommitsAndGetDenseOffsets() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        let acks = try await withThrowingTaskGroup(of: AppendAcknowledgement.self) { group in
            for i in 0..<64 {
                group.addTask {
                    var batch = RecordBatchBuilder()
                    try batch.append(key: [UInt8(i)], value: sampleValue(i), timestamp: Int64(i))
                    return try await log.append(batch, partition: 0)
                }
            }
            var acks: [AppendAcknowledgement] = []
            for try await ack in group { acks.append(ack) }
            return acks
        }
        #expect(Set(acks.map(\.baseOffset)) == Set((0..<64).map(Int64.init)))
        let records = try readAll(log)
        for record in records {
            // Each record is where its acknowledgement said.
            let i = Int(record.key[0])
            #expect(acks.first { $0.baseOffset == record.offset } != nil)
            #expect(record.value == sampleValue(i))
        }
        try await log.close()
    }

    @Test func durabilityModesSayWhatTheyGave() async throws {
        for mode in [Durability.fsync, .interval(milliseconds: 5), .none] {
            let dir = TemporaryDirectory("mode")
            defer { dir.remove() }
            let log = try await WriteAheadLog.open(at: dir.path, options: options(durability: mode))
            let acks = try await appendSamples(log, 0..<20, batchSize: 4)
            #expect(acks.allSatisfy { $0.durability == mode })
            try await log.close()
            let reopened = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
            #expect(try readAll(reopened).count == 20)
        }
        #expect(Durability(parsing: "interval:250") == .interval(milliseconds: 250))
        #expect(Durability(parsing: "sometimes") == nil)
    }

    @Test func partitionerIsStableAndSpreadsKeys() {
        // Fixed values: a change of hash would move existing streams to other partitions.
        #expect(Partitioner.hash(Array("".utf8)) == 0xCBF2_9CE4_8422_2325)
        #expect(Partitioner.hash(Array("a".utf8)) == 0xAF63_DC4C_8601_EC8C)
        var counts = [Int](repeating: 0, count: 8)
        for i in 0..<8_000 { counts[Partitioner.partition(forKey: Array("acme/R-\(i)".utf8), partitionCount: 8)] += 1 }
        #expect(counts.allSatisfy { $0 > 800 && $0 < 1_200 })
    }

    @Test func secondWriterGetsAClearLockError() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        do {
            _ = try await WriteAheadLog.open(at: dir.path, options: options())
            Issue.record("a second writer must not open")
        } catch let error as LogError {
            guard case .locked = error else { Issue.record("expected .locked, got \(error)"); return }
            #expect(error.description.contains("locked by another writer"))
        }
        // Readers are never blocked by the writer.
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
        #expect(reader.partitionCount == 1)
        try await log.close()
        // After close the lock is free.
        let again = try await WriteAheadLog.open(at: dir.path, options: options())
        try await again.close()
    }

    @Test func readOnlyOpenOfAMissingLogFails() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        await #expect(throws: LogError.self) { _ = try await WriteAheadLog.open(at: dir.path + "/none", options: options(writable: false)) }
    }

    @Test func aCursorAtTheEndSeesLaterAppendsAcrossSegmentRolls() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10))
        try await appendSamples(log, 0..<100, batchSize: 10)
        var cursor = try log.cursor(partition: 0, from: 0)
        var read: [Record] = []
        while let batch = try cursor.next() { read += batch.recordList() }
        #expect(read.count == 100)
        #expect(try cursor.next() == nil)
        // Enough to roll several segments while the cursor waits at the end.
        for round in 0..<5 {
            try await appendSamples(log, (100 + round * 300)..<(100 + (round + 1) * 300), batchSize: 30)
            while let batch = try cursor.next() { read += batch.recordList() }
        }
        #expect(segmentFiles(dir.path).count > 2)
        #expect(read == (0..<1_600).map(sampleRecord))
        try await log.close()
    }
}
