import Foundation
import Testing
@testable import EventLog

/// File descriptors held by the log — those of /proc/self/fd that name a file of its
/// directory (other suites run beside this one) — bounded by `maxOpenSegmentFiles`, not by
/// the number of segments, and all given back once the log is released.
/// (A soak of the crash test failed with "too many open files" once its log held 20,000
/// segments: every segment stayed open.)
@Suite(.serialized) struct OpenFilesTests {
    static func openDescriptors(under directory: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "").hasPrefix(directory + "/") }.count
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
        let held = { Self.openDescriptors(under: dir.path) }
        // A writer that rolls segment after segment holds, per partition, its active
        // segment, LOCK and acknowledged-end files, and at most the limit of sealed ones
        // (those its open sized) in all — not one per segment it sealed.
        var segments = 0
        do {
            let log = try await WriteAheadLog.open(at: dir.path, options: Self.logOptions(maxOpen: 3))
            try await Self.fill(log)
            segments = segmentFiles(dir.path, partition: 0).count + segmentFiles(dir.path, partition: 1).count
            #expect(segments > 40, "\(segments) segments")
            #expect(held() <= 3 * 2 + 3, "the writer holds \(held()) descriptors after sealing \(segments) segments")
            try await log.close()
        }
        #expect(held() == 0, "\(held()) descriptors held once the log is closed and released")

        // Readers and writers reopening it: at most 3 sealed segments open at a time,
        // whichever partitions and segments are read.
        for round in 0..<6 {
            let writable = round % 2 == 0
            let reopened = try await WriteAheadLog.open(at: dir.path, options: Self.logOptions(writable: writable, maxOpen: 3))
            var records = 0, most = 0
            for partition in 0..<2 {
                var cursor = try reopened.cursor(partition: partition, from: 0)
                while let batch = try cursor.next() {
                    records += batch.header.recordCount
                    most = max(most, held())
                }
            }
            #expect(records == 2 * 320 * 40)
            // Per partition its active segment, and for a writer its LOCK and acknowledged-
            // end files; the shared sealed files (3); the cursor's segment if it was let go.
            #expect(most <= (writable ? 3 : 1) * 2 + 3 + 1, "\(most) descriptors while reading \(segments) segments, writable: \(writable)")
            #expect(reopened.openSegmentFiles <= 3)
            try await reopened.close()
        }
        #expect(held() == 0, "\(held()) descriptors held once every log is closed and released")
    }

    @Test func aLimitBelowOneIsRefused() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        await #expect(throws: LogError.self) { try await WriteAheadLog.open(at: dir.path, options: Self.logOptions(maxOpen: 0)) }
    }
}
