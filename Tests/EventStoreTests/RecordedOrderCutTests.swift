@testable import EventLog
@testable import EventStore
import Foundation
import Testing
import TestSupport

/// The recorded-order cut a writer publishes for readers in other processes (`recorded-order`,
/// `RecordedOrderCut`), and a reader opened `openInRecordedOrder` beside it. The writer's LOCK
/// is an flock, which a second open of the file in this process contends for as another
/// process would: the reader here sees the writer as one in another process does.
@Suite struct RecordedOrderCutTests {
    private func freshDirectory(_ name: String = #function) -> String {
        NSTemporaryDirectory() + "backorder-cut-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
    }

    private func event(_ stream: String, _ n: UInt64) -> NewEvent {
        NewEvent(id: EventID(high: 9, low: n), type: "Test", tenant: "acme", stream: stream, businessTime: 1_000,
                 actor: "u", correlationId: nil, data: Array("{}".utf8), expectedVersion: .any)
    }

    @Test func theFileDecodesWhatWasEncodedAndNothingDamaged() {
        let ends: [Int64] = [0, 7, 1 << 40]
        let bytes = RecordedOrderCut.encode(ends)
        #expect(bytes.count == RecordedOrderCut.size(partitions: 3))
        #expect(RecordedOrderCut.decode(bytes) == ends)
        for i in bytes.indices {
            var flipped = bytes
            flipped[i] ^= 0x10
            #expect(RecordedOrderCut.decode(flipped) == nil, "a flipped bit at byte \(i) decoded")
        }
        #expect(RecordedOrderCut.decode(Array(bytes.dropLast())) == nil, "a short file decoded")
        #expect(RecordedOrderCut.decode(bytes + [0]) == nil, "a long file decoded")
    }

    @Test(.timeLimit(.minutes(2))) func aReaderInAnotherProcessWaitsForAnEarlierAppendInFlight() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let heldPartition = "/" + WriteAheadLog.partitionDirectoryName(0) + "/"
        let storage = GatedSyncStorage { $0.hasSuffix(".log") && $0.contains(heldPartition) }
        var options = StoreOptions()
        options.log.partitionCount = 2
        let store = try await EventStore.open(at: dir, options: options, storage: storage)
        let names = (0..<64).map { "record/R-\($0)" }
        let early = try #require(names.first { store.reader.partition(tenant: "acme", stream: $0) == 0 })
        let late = try #require(names.first { store.reader.partition(tenant: "acme", stream: $0) == 1 })
        _ = try await store.append([event(early, 1), event(late, 2)])
        let ordered = try await EventReader.openInRecordedOrder(at: dir)
        #expect(try ordered.endOffsets() == [1, 1], "what settled before the open")

        storage.close()
        defer { storage.open() }  // a failed expectation must not leave the log's writer held
        let first = Task { try await store.submit([event(early, 3)]).acknowledged() }
        await storage.heldSync()
        _ = try await store.submit([event(late, 4)]).acknowledged()
        let acknowledged = try await EventReader.open(at: dir)
        #expect(try acknowledged.endOffsets() == [1, 2], "a reader at the acknowledged ends has the later event")
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [1, 1], "recorded after an event in flight")
        #expect(try await EventReader.openInRecordedOrder(at: dir).endOffsets() == [1, 1], "at open too")

        storage.open()
        _ = try await first.value
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [2, 2])
        var reader = try RecordedOrderReader(source: ordered, from: [1, 1], to: [2, 2])
        #expect(try reader.next()?.stream == early)
        #expect(try reader.next()?.stream == late)
        #expect(try reader.next() == nil)

        // Without a writer the file puts no limit: a stale one (made so here) is not honoured.
        try await store.close()
        try RecordedOrderCut.encode([0, 0]).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/recorded-order")) }
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [2, 2])
    }

    @Test func aCutOfAnotherPartitionCountIsAnErrorThatNamesTheFile() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = StoreOptions()
        options.log.partitionCount = 2
        let store = try await EventStore.open(at: dir, options: options)
        try RecordedOrderCut.encode([0, 0, 0]).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/recorded-order")) }
        do {
            _ = try await EventReader.openInRecordedOrder(at: dir)
            Issue.record("a cut of 3 partitions was taken for a log of 2")
        } catch {
            #expect("\(error)".contains(dir + "/recorded-order"), "\(error)")
            #expect("\(error)".contains("3 partitions; the log has 2"), "\(error)")
        }
        try await store.close()
    }
}
