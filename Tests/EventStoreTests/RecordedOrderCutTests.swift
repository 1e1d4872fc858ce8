@testable import EventLog
@testable import EventStore
import Foundation
import Synchronization
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
        let store = try await openStore(at: dir, storage: storage)
        let (early, late) = try streams(store)
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
        let store = try await openStore(at: dir)
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

    /// The probe readers use: a missing lock file is no writer, a held one is, a released
    /// one is not — and a read-only lock file is probed, not taken for a writer.
    @Test func theLockProbeTellsAWriterFromNone() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = PosixStorage()
        try storage.createDirectory(dir)
        let path = dir + "/LOCK"
        #expect(!storage.isLockHeld(path))
        #expect(!storage.exists(path), "the probe created the lock file")
        let lock = try storage.lock(path)
        #expect(storage.isLockHeld(path))
        lock.release()
        #expect(!storage.isLockHeld(path))
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path)
        #expect(!storage.isLockHeld(path))
    }

    /// A store of two partitions.
    private func openStore(at dir: String, storage: any Storage = PosixStorage()) async throws -> EventStore {
        var options = StoreOptions()
        options.log.partitionCount = 2
        return try await EventStore.open(at: dir, options: options, storage: storage)
    }

    /// Streams of `store` in partitions 0 and 1.
    private func streams(_ store: EventStore) throws -> (String, String) {
        let names = (0..<64).map { "record/R-\($0)" }
        return (try #require(names.first { store.reader.partition(tenant: "acme", stream: $0) == 0 }),
                try #require(names.first { store.reader.partition(tenant: "acme", stream: $0) == 1 }))
    }

    /// A partition's `acknowledged` file caught mid-write (here: damaged until rewritten)
    /// keeps that partition's view where it was; the reader must not then read the others
    /// to a cut that partition's view does not reach.
    @Test func aCutThePartitionsViewDoesNotReachIsNotTaken() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await openStore(at: dir)
        let (p0, p1) = try streams(store)
        _ = try await store.append([event(p0, 1), event(p1, 2)])
        let ordered = try await EventReader.openInRecordedOrder(at: dir)
        #expect(try ordered.endOffsets() == [1, 1])

        _ = try await store.append([event(p0, 3), event(p1, 4)])
        let acknowledged = dir + "/log/" + WriteAheadLog.partitionDirectoryName(0) + "/acknowledged"
        let good = try Data(contentsOf: URL(fileURLWithPath: acknowledged))
        try Data(repeating: 0xEE, count: good.count).write(to: URL(fileURLWithPath: acknowledged))
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [1, 1], "partition 1 read past partition 0's view, to the cut [2, 2]")
        try good.write(to: URL(fileURLWithPath: acknowledged))
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [2, 2])
        try await store.close()
    }

    /// A write of the `recorded-order` file that fails fails no append and no partition:
    /// readers in other processes keep the last cut until a later settle writes it.
    @Test func aFailedWriteOfTheCutFailsNoAppend() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = CutWriteFailingStorage()
        let store = try await openStore(at: dir, storage: storage)
        let (p0, p1) = try streams(store)
        let ordered = try await EventReader.openInRecordedOrder(at: dir)
        storage.failing.withLock { $0 = true }
        _ = try await store.append([event(p0, 1), event(p1, 2)])
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [0, 0], "the cut could not be written: the reader keeps the last")
        storage.failing.withLock { $0 = false }
        _ = try await store.append([event(p0, 3)])
        _ = try await store.append([event(p1, 4)])
        try ordered.refresh()
        #expect(try ordered.endOffsets() == [2, 2])
        try await store.close()
    }
}

/// The real file system, whose writes of the store's `recorded-order` file fail (EIO) while
/// `failing` is set.
private final class CutWriteFailingStorage: ForwardingStorage, @unchecked Sendable {
    let failing = Mutex(false)

    override func wrap(_ file: any StorageFile, path: String) -> any StorageFile {
        path.hasSuffix("/" + RecordedOrderCut.fileName) ? FailingFile(file, storage: self) : file
    }

    private final class FailingFile: ForwardingFile, @unchecked Sendable {
        let storage: CutWriteFailingStorage

        init(_ inner: any StorageFile, storage: CutWriteFailingStorage) {
            self.storage = storage
            super.init(inner)
        }

        override func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
            if storage.failing.withLock({ $0 }) { throw LogError.fromErrno(EIO, operation: "pwrite", path: path) }
            try super.write(bytes, at: offset)
        }
    }
}
