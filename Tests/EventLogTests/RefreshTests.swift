import Foundation
import Testing
@testable import EventLog

/// A log opened read-only catches up in place with another writer's appends
/// (`WriteAheadLog.refresh`): what `read --follow` and `consume --follow` rely on.
@Suite struct RefreshTests {
    @Test func aReadOnlyLogSeesAppendsAndRolledSegmentsAfterRefresh() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // Small segments, so that the writer rolls several while the reader follows.
        let writer = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, segmentBytes: 64 << 10))
        try await appendSamples(writer, 0..<50, batchSize: 10)
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, segmentBytes: 64 << 10, writable: false))
        #expect(try reader.endOffset(partition: 0) == 50)
        var cursor = try reader.cursor(partition: 0, from: 0)
        var seen: [Record] = []
        while let batch = try cursor.next() { seen += batch.recordList() }
        #expect(seen.count == 50)
        #expect(try reader.refresh() == false, "nothing new")
        var next = 50
        for round in 0..<6 {
            try await appendSamples(writer, next..<(next + 400), batchSize: 7)
            try await appendSamples(writer, 0..<3, batchSize: 3, partition: 1)
            next += 400
            #expect(try reader.refresh(), "round \(round): the reader sees the new batches")
            #expect(try reader.endOffset(partition: 0) == Int64(next))
            // The cursor that reached the end before goes on, across the rolled segments.
            while let batch = try cursor.next() { seen += batch.recordList() }
            #expect(seen == (0..<next).map(sampleRecord), "round \(round): every record once, in order")
        }
        #expect(segmentFiles(dir.path).count > 3, "the writer rolled segments while the reader followed")
        #expect(try readAll(reader, partition: 1).count == 18)
        // A fresh read-only open agrees with the refreshed one.
        let fresh = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, segmentBytes: 64 << 10, writable: false))
        #expect(try readAll(fresh) == readAll(reader))
        #expect(throws: LogError.self) { try writer.refresh() }
        try await writer.close()
    }

    /// A follower's wait ends when the writer writes, not after its timeout: a change made
    /// before the wait counts too, and a quiet log lets the wait run out.
    @Test func theWatcherWakesAFollowerAtTheWritersWrite() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2))
        try await appendSamples(writer, 0..<5, batchSize: 5)
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 2, writable: false))
        let watcher = LogWatcher(log: reader)
        #expect(watcher.isWatching && watcher.watched == 2, "inotify watches both partitions")
        // Quiet: the wait runs its whole (short) timeout.
        let quiet = ContinuousClock.now
        watcher.wait(milliseconds: 50)
        #expect(ContinuousClock.now - quiet >= .milliseconds(45))
        // A write before the wait: it returns at once, far inside its 20 s timeout.
        try await appendSamples(writer, 5..<10, batchSize: 5, partition: 1)
        let early = ContinuousClock.now
        watcher.wait(milliseconds: 20_000)
        #expect(ContinuousClock.now - early < .seconds(10))
        #expect(try reader.refresh() && reader.endOffset(partition: 1) == 5)
        // A write while a thread waits: the wait ends with it (the thread reports how long
        // it waited once it returns).
        let waited: Duration = try await withCheckedThrowingContinuation { continuation in
            let started = ContinuousClock.now
            Thread {
                watcher.wait(milliseconds: 20_000)
                continuation.resume(returning: ContinuousClock.now - started)
            }.start()
            Task {
                do { try await appendSamples(writer, 10..<20, batchSize: 10) } catch { print("append failed: \(error)") }
            }
        }
        #expect(waited < .seconds(10))
        try await writer.close()
    }

    /// Read-only instances beside a writer read no batch beyond the acknowledged end it
    /// published (`acknowledged`): a batch written but not yet acknowledged (here: the file
    /// set back, as it is between a write and its fsync) is invisible to an open and to a
    /// refresh until the writer moves the end; an unreadable file makes a refresh wait, an
    /// absent one means the data's end (a log of an earlier version), and so does any file
    /// once no writer holds the partition.
    @Test func readOnlyReadersStopAtTheAcknowledgedEnd() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let mark = dir.path + "/partition-0000/" + AcknowledgedEnd.fileName
        func setMark(_ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: mark)) }
        let writer = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1))
        #expect(AcknowledgedEnd.decode(Array(try Data(contentsOf: URL(fileURLWithPath: mark)))) == 0, "written at open")
        try await appendSamples(writer, 0..<20, batchSize: 5)
        #expect(AcknowledgedEnd.decode(Array(try Data(contentsOf: URL(fileURLWithPath: mark)))) == 20)
        #expect(try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1, writable: false)).endOffset(partition: 0) == 20)

        try setMark(AcknowledgedEnd.encode(15))
        let reader = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1, writable: false))
        #expect(try reader.endOffset(partition: 0) == 15, "the batch after 15 is not acknowledged")
        #expect(try readAll(reader).count == 15)
        #expect(try reader.refresh() == false)
        try await appendSamples(writer, 20..<25, batchSize: 5)
        #expect(try reader.refresh() && reader.endOffset(partition: 0) == 25)
        #expect(try readAll(reader) == (0..<25).map(sampleRecord))

        try setMark(AcknowledgedEnd.encode(25).map { $0 ^ 0x01 })
        try await appendSamples(writer, 25..<30, batchSize: 5)  // the writer rewrites it…
        try setMark([1, 2, 3])                                    // …and it is caught mid-write
        #expect(try reader.refresh() == false, "an unreadable end: wait")
        #expect(try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1, writable: false)).endOffset(partition: 0) == 30,
                "an open without a readable end reads to the data's end")
        try FileManager.default.removeItem(atPath: mark)
        #expect(try reader.refresh() && reader.endOffset(partition: 0) == 30, "absent: the data's end")
        try await writer.close()
        // No writer: a stale end (as a power cut may leave it) does not hide durable data.
        try setMark(AcknowledgedEnd.encode(10))
        #expect(try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1, writable: false)).endOffset(partition: 0) == 30)
        let again = try await WriteAheadLog.open(at: dir.path, options: options(partitions: 1))
        #expect(AcknowledgedEnd.decode(Array(try Data(contentsOf: URL(fileURLWithPath: mark)))) == 30, "a writable open publishes what it recovered")
        try await again.close()
    }
}
