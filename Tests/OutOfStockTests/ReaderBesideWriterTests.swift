import EventLog
import EventStore
import Foundation
import Testing

/// Readers beside a writer (issue 17): while `backorder append` runs in another process —
/// batches of 1, 10, 100 and 1,000 events, each run closing (and so cutting its segments'
/// pre-zeroed space) at the end — this process verifies the log's checksums and chain and
/// opens it read-only and reads every event, again and again. None of it may report damage:
/// the pre-zeroed space, a batch half copied into the page cache and a segment cut at close
/// are the writer at work, not corruption.
@Suite(.serialized) struct ReaderBesideWriterTests {
    @Test func readersNeverReportDamageWhileAppendsRun() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Enough input for 20 rounds; a loaded machine reads less per round, so the rounds go on
        // until the readers have had their 1,000 looks (4 rounds at the least).
        let lines = try generatedInput(events: 60_000, seed: 41)
        let store = dir + "/store"
        var reads = 0, verifies = 0, refreshes = 0
        // Per round, the looks begun while the writer was still running.
        var besideWriter: [Int] = []
        var falseAlarms: [String] = []
        // A follower that opened once and catches up in place (`refresh`), as `read
        // --follow` does: every event exactly once, in offset order, per partition.
        var follower: EventReader?
        var followed: [Int64] = []
        var cursors: [EventCursor] = []
        // Appends of 3,000 events, batch sizes in turn, until the readers have looked at
        // the log (a checksum and chain verify, a refresh of the follower and a full read)
        // 1,000 times or 20 rounds have run; every batch size at least once.
        for round in 0..<20 where round < 4 || reads + verifies < 1_000 {
            let batchSize = [1, 100, 1_000, 10][round % 4]
            let input = dir + "/input-\(round).ndjson"
            try (lines[(round * 3_000)..<((round + 1) * 3_000)].joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
            let writer = try startBackorder(["append", input, "--data", store, "--batch-size", String(batchSize), "--partitions", "4"],
                                            output: dir + "/append-\(round)")
            // Read until the writer has exited, and once more after.
            var exited = false
            besideWriter.append(0)
            while !exited {
                exited = !writer.isRunning
                guard FileManager.default.fileExists(atPath: store + "/log/MANIFEST") else { continue }
                if !exited { besideWriter[besideWriter.count - 1] += 1 }
                let report = try ChainVerifier(path: store + "/log").verify()
                verifies += 1
                falseAlarms += report.damage.map { "batch size \(batchSize), verify: \($0.path) @\($0.byteOffset): \($0.reason)" }
                do {
                    if follower == nil {
                        let opened = try await EventReader.open(at: store)
                        follower = opened
                        followed = Array(repeating: 0, count: opened.partitionCount)
                        cursors = try (0..<opened.partitionCount).map { try opened.events(partition: $0, from: 0) }
                    }
                    try follower?.refresh()
                    for partition in cursors.indices {
                        while let batch = try cursors[partition].next() {
                            for event in batch {
                                if event.position.offset != followed[partition] {
                                    falseAlarms.append("batch size \(batchSize), follower: partition \(partition) offset \(event.position.offset) where \(followed[partition]) was next")
                                }
                                followed[partition] = event.position.offset + 1
                            }
                        }
                    }
                    refreshes += 1
                } catch {
                    falseAlarms.append("batch size \(batchSize), follow: \(error)")
                }
                do {
                    let reader = try await EventReader.open(at: store)
                    for partition in 0..<reader.partitionCount {
                        var cursor = try reader.events(partition: partition, from: 0)
                        while try cursor.next() != nil {}
                    }
                    reads += 1
                } catch {
                    falseAlarms.append("batch size \(batchSize), read: \(error)")
                }
            }
            writer.waitUntilExit()
            #expect(writer.terminationStatus == 0, "append of round \(round) failed")
        }
        // The follower, refreshed once more after the last append, holds every event.
        try follower?.refresh()
        for partition in cursors.indices {
            while let batch = try cursors[partition].next() { followed[partition] = (batch.last?.position.offset ?? followed[partition] - 1) + 1 }
        }
        let reopened = try await EventReader.open(at: store)
        #expect(followed == (try reopened.endOffsets()), "the follower caught up with every event")
        #expect(falseAlarms.isEmpty, "\(falseAlarms.count) false alarms: \(falseAlarms.prefix(5))")
        // The readers overlapped every append (how many looks fit depends on the machine's
        // load: the rounds go on towards 1,000, but the count itself is not the test).
        #expect(besideWriter.allSatisfy { $0 >= 1 }, "every round's readers ran beside its writer: \(besideWriter) looks per round")
        print("readers beside a writer: \(besideWriter.count) rounds, \(besideWriter) looks begun while each writer ran; \(verifies) verifies, \(reads) full reads and \(refreshes) refreshes of a follower beside the appends, \(falseAlarms.count) false alarms")
    }
}
