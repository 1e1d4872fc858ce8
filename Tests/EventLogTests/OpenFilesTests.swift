import Foundation
import Testing
@testable import EventLog

/// Segment files held open by the log — the descriptors of /proc/self/fd that name a `.log`
/// file of its directory (other suites run beside this one; index and recovery files are
/// opened and closed as they are written) — bounded by `maxOpenSegmentFiles`, not by the
/// number of segments, and all given back once the log is released.
/// (A soak of the crash test failed with "too many open files" once its log held 20,000
/// segments: every segment stayed open.)
@Suite(.serialized) struct OpenFilesTests {
    static func openSegments(under directory: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)) ?? ""
            return target.hasPrefix(directory + "/") && target.hasSuffix(SegmentFile.logExtension)
        }.count
    }

    /// Waits until the released logs' writer threads have ended (they let go of their
    /// partition, and its files, just after `close` returns).
    static func released(under directory: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(10)
        while openSegments(under: directory) > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return openSegments(under: directory)
    }

    static func logOptions(writable: Bool = true, maxOpen: Int = 256) -> LogOptions {
        var o = options(partitions: 2, segmentBytes: 64 << 10, writable: writable)
        o.maxOpenSegmentFiles = maxOpen
        return o
    }

    /// Appends 320 batches of 40 records to each partition: about 23 segments each.
    static func fill(_ log: WriteAheadLog, rounds: Range<Int> = 0..<320) async throws {
        for round in rounds {
            for partition in 0..<2 {
                var batch = RecordBatchBuilder()
                for i in 0..<40 { try batch.append(key: [], value: sampleValue(round * 40 + i), timestamp: Int64(round)) }
                _ = try await log.append(batch, partition: partition)
            }
        }
    }

    @Test func aLogOfManySegmentsHoldsNoMoreFilesThanItsLimit() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let held = { Self.openSegments(under: dir.path) }
        // A writer that rolls segment after segment holds its active segments, and at most
        // the limit of sealed ones — not one per segment it sealed.
        var segments = 0
        do {
            let log = try await WriteAheadLog.open(at: dir.path, options: Self.logOptions(maxOpen: 3))
            try await Self.fill(log)
            segments = segmentFiles(dir.path, partition: 0).count + segmentFiles(dir.path, partition: 1).count
            #expect(segments > 40, "\(segments) segments")
            #expect(held() <= 2 + 3, "the writer holds \(held()) segment files open after sealing \(segments) segments")
            try await log.close()
        }
        #expect(try await Self.released(under: dir.path) == 0, "segment files held once the log is closed and released")

        // Readers and writers reopening it: at most 3 sealed segments open at a time,
        // whichever partitions and segments are read.
        for round in 0..<6 {
            let writable = round % 2 == 0
            try await Self.readAll(dir.path, writable: writable, segments: segments)
            // The next round counts its own files only: a writer thread, or the last
            // reference to a read-only log, lets go of its files just after `close` returns
            // (CI counted 7: most likely the previous round's active segments beside these).
            #expect(try await Self.released(under: dir.path) == 0, "segment files held once round \(round)'s log is closed and released")
        }
    }

    /// Opens the log, reads both partitions whole while counting the segment files held,
    /// and closes it; the log is released when this returns.
    static func readAll(_ path: String, writable: Bool, segments: Int) async throws {
        let reopened = try await WriteAheadLog.open(at: path, options: logOptions(writable: writable, maxOpen: 3))
        var records = 0, most = 0
        for partition in 0..<2 {
            var cursor = try reopened.cursor(partition: partition, from: 0)
            while let batch = try cursor.next() {
                records += batch.header.recordCount
                most = max(most, openSegments(under: path))
            }
        }
        #expect(records == 2 * 320 * 40)
        // The active segments (2), the shared sealed ones (3), the cursor's if it was let go.
        #expect(most <= 2 + 3 + 1, "\(most) segment files open while reading \(segments) segments, writable: \(writable)")
        #expect(reopened.openSegmentFiles <= 3)
        try await reopened.close()
    }

    @Test func aLimitBelowOneIsRefused() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        await #expect(throws: LogError.self) { try await WriteAheadLog.open(at: dir.path, options: Self.logOptions(maxOpen: 0)) }
    }
}
