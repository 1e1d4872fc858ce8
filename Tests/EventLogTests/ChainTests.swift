import Foundation
import Testing
@testable import EventLog

/// The hash chain of batch format 2 and the verifier behind `backorder audit verify`:
/// every kind of tampering is detected and located, an intact log verifies, and heads
/// kept elsewhere catch a rewrite of the whole chain.
@Suite struct ChainTests {
    /// Two partitions of several 64 KiB segments each, written in two sessions (so the
    /// chain must be recovered at reopen), 20 records a batch.
    private func writeLog(_ path: String) async throws {
        var log = try await WriteAheadLog.open(at: path, options: options(partitions: 2, segmentBytes: 64 << 10))
        for partition in 0..<2 { try await appendSamples(log, 0..<1_500, batchSize: 20, partition: partition) }
        try await log.close()
        log = try await WriteAheadLog.open(at: path, options: options(partitions: 2, segmentBytes: 64 << 10))
        for partition in 0..<2 { try await appendSamples(log, 1_500..<2_000, batchSize: 20, partition: partition) }
        try await log.close()
    }

    /// Batch start positions and headers of a segment file.
    private func batches(_ path: String) throws -> [(position: Int64, header: BatchHeader)] {
        var found: [(Int64, BatchHeader)] = []
        _ = try SegmentInspector.inspect(path: path) { entry in
            if case let .batch(header, position, _, _, _) = entry { found.append((position, header)) }
        }
        return found
    }

    private func verify(_ path: String, expecting heads: ChainHeads? = nil) throws -> ChainVerifier.Report {
        try ChainVerifier(path: path).verify(expecting: heads)
    }

    @Test func anIntactLogVerifiesWithCountsAndHeadsThatMatchTheLastBatches() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let report = try verify(dir.path)
        #expect(report.damage.isEmpty, "\(report.damage)")
        #expect(report.chained)
        for partition in 0..<2 {
            let files = segmentFiles(dir.path, partition: partition)
            #expect(files.count > 2, "the test needs several segments")
            let result = report.partitions[partition]
            #expect(result.events == 2_000 && result.endOffset == 2_000 && result.segments == files.count)
            let last = try #require(try batches(files[files.count - 1]).last)
            #expect(result.head == last.header.chain)
            #expect(last.header.version == 2)
        }
        // Each partition's chain starts from its own genesis, so the heads differ.
        #expect(report.partitions[0].head != report.partitions[1].head)
    }

    @Test func theChainIsSHA256OfThePreviousHashAndTheBatchBytesOutsideTheChainField() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let manifest = try Manifest.decode(readFile(dir.path + "/MANIFEST"), path: dir.path)
        let file = readFile(segmentFiles(dir.path)[0])
        let first = try #require(try batches(segmentFiles(dir.path)[0]).first)
        let bytes = Array(file[0..<first.header.batchLength])
        // Recomputed from the definition, independently of ChainHash.link.
        let genesis = ChainHash.digest(Array("backorder-chain \(manifest.logID ?? "-") 0".utf8))
        let expected = ChainHash.digest(genesis.bytes + Array(bytes[12..<56]) + Array(bytes[88...]))
        #expect(first.header.chain == expected)
        #expect(Array(bytes[56..<88]) == expected.bytes)
    }

    @Test func editingOneByteOfAStoredEventIsDetectedAndLocated() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path, partition: 1)[1]
        let target = try batches(segment)[2]
        var bytes = readFile(segment)
        bytes[Int(target.position) + BatchHeader.size + 5] ^= 0x20
        writeFile(segment, bytes)
        let damage = try verify(dir.path).damage
        #expect(damage.count == 1, "\(damage)")
        #expect(damage.first?.partition == 1 && damage.first?.path == segment)
        #expect(damage.first?.byteOffset == target.position && damage.first?.eventOffset == target.header.baseOffset)
        #expect(damage.first?.reason.contains("CRC32C mismatch") == true)
        #expect(damage.first?.reason.contains("chain link broken") == true)
    }

    @Test func anEditWhoseCRCWasRecomputedStillBreaksTheChain() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path)[0]
        let target = try batches(segment)[3]
        var bytes = readFile(segment)
        let start = Int(target.position), end = start + target.header.batchLength
        bytes[start + BatchHeader.size + 7] ^= 0x01
        bytes[start..<end].withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base + 12, count: raw.count - 12)), to: base, at: 8)
        }
        writeFile(segment, bytes)
        let damage = try verify(dir.path).damage
        #expect(damage.count == 1, "\(damage)")
        #expect(damage.first?.byteOffset == target.position)
        #expect(damage.first?.reason.contains("chain link broken") == true)
        #expect(damage.first?.reason.contains("CRC") == false)
    }

    @Test func deletingABatchIsDetectedWhereItWas() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path)[1]
        let list = try batches(segment)
        let removed = list[4]
        var bytes = readFile(segment)
        bytes.removeSubrange(Int(removed.position)..<Int(removed.position) + removed.header.batchLength)
        writeFile(segment, bytes)
        let damage = try verify(dir.path).damage
        let first = try #require(damage.first)
        #expect(first.path == segment && first.byteOffset == removed.position)
        #expect(first.eventOffset == list[5].header.baseOffset)
        #expect(first.reason.contains("expected \(removed.header.baseOffset)") && first.reason.contains("chain link broken"))
    }

    @Test func reorderingTwoBatchesIsDetectedAtTheFirstOfThem() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path, partition: 1)[0]
        let list = try batches(segment)
        let a = list[2], b = list[3]
        let bytes = readFile(segment)
        let aStart = Int(a.position), bStart = Int(b.position), bEnd = bStart + b.header.batchLength
        var swapped = Array(bytes[..<aStart])
        swapped += bytes[bStart..<bEnd]
        swapped += bytes[aStart..<bStart]
        swapped += bytes[bEnd...]
        writeFile(segment, swapped)
        let damage = try verify(dir.path).damage
        let first = try #require(damage.first)
        #expect(first.partition == 1 && first.byteOffset == a.position && first.eventOffset == b.header.baseOffset)
        #expect(first.reason.contains("expected \(a.header.baseOffset)"))
        // No CRC is wrong: only order and links tell.
        #expect(damage.allSatisfy { !$0.reason.contains("CRC") })
    }

    @Test func truncatingASealedSegmentInsideABatchIsDetected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path)[0]
        let last = try #require(try batches(segment).last)
        let bytes = readFile(segment)
        writeFile(segment, Array(bytes[..<(Int(last.position) + 40)]))
        let damage = try verify(dir.path).damage
        let first = try #require(damage.first)
        #expect(first.path == segment && first.byteOffset == last.position && first.eventOffset == last.header.baseOffset)
        // The next segment then starts after a gap.
        #expect(damage.contains { $0.path == segmentFiles(dir.path)[1] && $0.byteOffset == 0 })
    }

    @Test func truncatingWholeBatchesAtTheEndIsCaughtByTheExpectedHeads() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let heads = try verify(dir.path).heads
        let segment = try #require(segmentFiles(dir.path).last)
        let last = try #require(try batches(segment).last)
        writeFile(segment, Array(readFile(segment)[..<Int(last.position)]))
        // The recovery point saved at close says how far the data went.
        let found = try verify(dir.path).damage
        #expect(found.count == 1 && found.first?.reason.contains("acknowledged data was cut off") == true, "\(found)")
        // Without it (removed too), the cut at a batch boundary is a plausible log: only the heads tell.
        try FileManager.default.removeItem(atPath: dir.path + "/" + WriteAheadLog.partitionDirectoryName(0) + "/" + RecoveryPoint.fileName)
        #expect(try verify(dir.path).damage.isEmpty)
        let damage = try verify(dir.path, expecting: heads).damage
        #expect(damage.count == 1, "\(damage)")
        #expect(damage.first?.partition == 0 && damage.first?.eventOffset == last.header.baseOffset)
        #expect(damage.first?.reason.contains("events were removed") == true)
    }

    @Test func headsOfAnOlderStateStillMatchAfterMoreAppends() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let heads = try verify(dir.path).heads
        let text = heads.text
        #expect(try ChainHeads.parse(text, path: "heads") == heads)
        let log = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, segmentBytes: 64 << 10))
        try await appendSamples(log, 2_000..<2_300, batchSize: 20, partition: 1)
        try await log.close()
        let report = try verify(dir.path, expecting: heads)
        #expect(report.damage.isEmpty, "\(report.damage)")
        #expect(report.partitions[1].endOffset == 2_300)
    }

    @Test func aRewrittenChainPassesAloneButNotAgainstTheExpectedHeads() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let heads = try verify(dir.path).heads
        // An attacker edits an event and recomputes every chain hash and CRC after it.
        var previous = ChainHash.genesis(logID: try Manifest.decode(readFile(dir.path + "/MANIFEST"), path: dir.path).logID, partition: 0)
        var edited = false
        for segment in segmentFiles(dir.path) {
            var bytes = readFile(segment)
            for batch in try batches(segment) {
                let start = Int(batch.position)
                if !edited {
                    bytes[start + BatchHeader.size + 3] ^= 0x04
                    edited = true
                }
                bytes[start..<(start + batch.header.batchLength)].withUnsafeMutableBytes { raw in
                    guard let base = raw.baseAddress else { return }
                    previous = BatchHeader.stamp(baseOffset: batch.header.baseOffset, previous: previous, batch: base, length: raw.count)
                }
            }
            writeFile(segment, bytes)
        }
        #expect(try verify(dir.path).damage.isEmpty, "a consistent rewrite cannot be told from the log alone")
        let damage = try verify(dir.path, expecting: heads).damage
        #expect(damage.count == 1, "\(damage)")
        #expect(damage.first?.partition == 0 && damage.first?.eventOffset != nil)
        #expect(damage.first?.reason.contains("rewritten") == true)
    }

    @Test func aBatchDowngradedToVersion1ToEscapeTheChainIsReported() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path)[1]
        let list = try batches(segment)
        var bytes = readFile(segment)
        let start = Int(list[3].position)
        bytes[start..<(start + list[3].header.batchLength)].withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            ByteCoding.store(UInt8(0x7A), to: base, at: BatchHeader.size + 2) // the edit
            ByteCoding.store(UInt8(1), to: base, at: BatchHeader.versionAt)
            ChainHash.zero.store(to: base + BatchHeader.chainAt)
            ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base + 12, count: raw.count - 12)), to: base, at: 8)
        }
        writeFile(segment, bytes)
        let damage = try verify(dir.path).damage
        #expect(damage.count == 2, "\(damage)")
        #expect(damage.first?.byteOffset == list[3].position && damage.first?.reason.contains("format version 1") == true)
        #expect(damage.last?.byteOffset == list[4].position && damage.last?.reason.contains("chain link broken") == true)
    }

    @Test func verifyKeepsGoingPastADamagedHeaderAndReportsLaterDamageToo() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        let segment = segmentFiles(dir.path)[0]
        let list = try batches(segment)
        var bytes = readFile(segment)
        bytes[Int(list[1].position) + 4] ^= 0xFF // batch length: the framing is lost here
        bytes[Int(list[6].position) + BatchHeader.size + 1] ^= 0x10 // payload of a later batch
        writeFile(segment, bytes)
        let report = try verify(dir.path)
        let damage = report.damage
        #expect(damage.count == 3, "\(damage)")
        #expect(damage[0].byteOffset == list[1].position)
        // After resynchronising on batch 2, its link to the unreadable batch 1 fails.
        #expect(damage[1].byteOffset == list[2].position && damage[1].reason.contains("chain link broken"))
        #expect(damage[2].byteOffset == list[6].position && damage[2].reason.contains("CRC32C mismatch"))
        #expect(report.partitions[0].events == 2_000 - Int64(list[1].header.recordCount))
    }

    /// A log of 200 records in batches of 20, left open: its writer holds the partition.
    private func heldLog(_ path: String) async throws -> WriteAheadLog {
        let log = try await WriteAheadLog.open(at: path, options: options(segmentBytes: 1 << 20))
        try await appendSamples(log, 0..<200, batchSize: 20)
        return log
    }

    /// Writes the first 100 bytes of the segment's first batch (its header: magic, length,
    /// CRC) after `last`, where the next batch goes: a batch half copied into the page cache.
    private func writeHalfABatch(_ segment: String, after last: (position: Int64, header: BatchHeader)) throws {
        let handle = try #require(FileHandle(forWritingAtPath: segment))
        try handle.seek(toOffset: UInt64(last.position) + UInt64(last.header.batchLength))
        try handle.write(contentsOf: readFile(segment)[0..<100])
        try handle.close()
    }

    /// A batch half copied into the page cache past the acknowledged end is the writer at
    /// work while it holds the partition — one CI run's verify beside an append called it
    /// damage when the writer was descheduled longer than the re-reads waited — and a torn
    /// tail when nobody does.
    @Test func bytesPastTheAcknowledgedEndAreWorkInProgressWhileAWriterHoldsThePartition() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await heldLog(dir.path)
        let segment = try #require(segmentFiles(dir.path).last)
        let last = try #require(try batches(segment).last)
        try writeHalfABatch(segment, after: last)
        let beside = try verify(dir.path)
        #expect(beside.damage.isEmpty, "\(beside.damage)")
        #expect(beside.partitions[0].endOffset == 200 && beside.partitions[0].endedBesideWriter == 200)
        // The same files with no writer holding them: a torn tail, reported where it starts.
        let copy = TemporaryDirectory()
        defer { copy.remove() }
        try FileManager.default.removeItem(atPath: copy.path)
        try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
        let alone = try verify(copy.path)
        let torn = try #require(alone.damage.first)
        #expect(torn.byteOffset == last.position + Int64(last.header.batchLength), "\(alone.damage)")
        try await log.close()
    }

    /// Beside a holding writer, damage below the acknowledged end is reported as ever — and
    /// once anything is, a torn tail past the end is no longer taken for the writer's work
    /// (the damaged batch's offsets are no measure of what was acknowledged).
    @Test func damageBelowTheAcknowledgedEndIsReportedWhileAWriterHoldsThePartition() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await heldLog(dir.path)
        let segment = try #require(segmentFiles(dir.path).last)
        let list = try batches(segment)
        // A byte of the third batch's payload, then half a batch where the next one goes.
        let handle = try #require(FileHandle(forUpdatingAtPath: segment))
        try handle.seek(toOffset: UInt64(list[2].position) + UInt64(BatchHeader.size) + 5)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: UInt64(list[2].position) + UInt64(BatchHeader.size) + 5)
        try handle.write(contentsOf: [byte ^ 0x40])
        try handle.close()
        let last = list[list.count - 1]
        try writeHalfABatch(segment, after: last)
        let end = last.position + Int64(last.header.batchLength)
        let report = try verify(dir.path)
        #expect(report.damage.first?.byteOffset == list[2].position && report.damage.first?.reason.contains("CRC32C mismatch") == true, "\(report.damage)")
        #expect(report.damage.contains { $0.byteOffset == end }, "the torn tail is reported too: \(report.damage)")
        #expect(report.partitions[0].endedBesideWriter == nil)
        try await log.close()
    }

    @Test func theChainContinuesAcrossAReopenWhoseActiveSegmentIsEmpty() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await writeLog(dir.path)
        // A crash right after a roll leaves an empty newest segment.
        let directory = dir.path + "/" + WriteAheadLog.partitionDirectoryName(0)
        writeFile(directory + "/" + SegmentFile.name(baseOffset: 2_000, extension: SegmentFile.logExtension), [])
        let log = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, segmentBytes: 64 << 10))
        try await appendSamples(log, 2_000..<2_100, batchSize: 20)
        try await log.close()
        let report = try verify(dir.path)
        #expect(report.damage.isEmpty, "\(report.damage)")
        #expect(report.partitions[0].endOffset == 2_100)
    }

    @Test func aVersion1LogIsReadAsUnchainedButNotAppendedTo() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = try await WriteAheadLog.open(at: dir.path, options: options())
        try await appendSamples(log, 0..<200, batchSize: 20)
        try await log.close()
        // Turn it into what the previous build wrote: version 1 batches, zero chain, manifest 1.
        var manifest = try Manifest.decode(readFile(dir.path + "/MANIFEST"), path: dir.path)
        manifest.version = 1
        writeFile(dir.path + "/MANIFEST", manifest.encoded())
        let segment = segmentFiles(dir.path)[0]
        var bytes = readFile(segment)
        for batch in try batches(segment) {
            let start = Int(batch.position)
            bytes[start..<(start + batch.header.batchLength)].withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                ByteCoding.store(UInt8(1), to: base, at: BatchHeader.versionAt)
                ChainHash.zero.store(to: base + BatchHeader.chainAt)
                ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base + 12, count: raw.count - 12)), to: base, at: 8)
            }
        }
        writeFile(segment, bytes)
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
        #expect(try readAll(reader).map(\.value) == (0..<200).map(sampleValue))
        let report = try verify(dir.path)
        #expect(!report.chained && report.damage.isEmpty && report.partitions[0].events == 200)
        do {
            _ = try await WriteAheadLog.open(at: dir.path, options: options())
            Issue.record("a writable open of a version 1 log must fail")
        } catch let error as LogError {
            #expect(error.description.contains("format version 1"))
        }
    }

    @Test func headsFilesWithMistakesAreRejectedNamingTheLine() {
        #expect(throws: LogError.self) { try ChainHeads.parse("backorder-heads 2\n", path: "h") }
        do {
            _ = try ChainHeads.parse("backorder-heads 1\nlog-id x\npartition 0 end 5 chain zz\n", path: "h")
            Issue.record("a bad chain hash must be rejected")
        } catch {
            #expect("\(error)".contains("h, line 3"))
        }
        #expect(ChainHash(hex: String(repeating: "aB", count: 32))?.description == String(repeating: "ab", count: 32))
        #expect(ChainHash(hex: "ab") == nil)
    }
}
