@testable import EventLog
import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock
import TestSupport

/// Ingests beside another append still in flight — its log write held at a gate, so its
/// events can be neither read back nor settled — as a server's concurrent requests meet.
@Suite struct AppendsInFlightTests {
    private func ingest(_ lines: [String], _ store: EventStore) async throws -> IngestReport {
        var reader = LineReader(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "the test's lines")
        return try await Ingestor(store: store, options: IngestOptions()).ingest(&reader)
    }

    /// Expects the ingest to say a stream moved under it (a version conflict a server retries).
    private func expectStreamMoved(_ lines: [String], _ store: EventStore, stream: String, to version: Int64) async {
        do {
            _ = try await ingest(lines, store)
            Issue.record("decided without the events in flight on \(stream)")
        } catch let EventStoreError.wrongExpectedVersion(_, moved, _, actual) {
            #expect(moved == stream && actual == version)
        } catch {
            Issue.record("not a version conflict: \(error)")
        }
    }

    /// An event sent again while the first copy is in flight (a client that timed out and
    /// retried): the first copy cannot be read yet — reading it failed, "no event at" — so
    /// the line waits, like any line on a stream with events in flight, and once they
    /// settle it is a duplicate (or, with other content, refused naming the stored event).
    @Test(.timeLimit(.minutes(2))) func aResendOfAnEventInFlightIsADuplicateOnceItSettles() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = GatedSyncStorage()
        let store = try await EventStore.open(at: dir, storage: storage)
        #expect(try await ingest(setupLines, store).appended == setupLines.count)
        let id = "7d3f5a2c-1b4e-4c6d-8e9f-0a1b2c3d4e5f"
        let report = line("OutOfStockReported", #""recordId":"R-9","customerId":"C-1","productId":"P-1","size":"M","quantity":2"#, id: id)
        let changed = line("OutOfStockReported", #""recordId":"R-9","customerId":"C-1","productId":"P-1","size":"M","quantity":3"#, id: id)

        storage.close()
        defer { storage.open() }  // a failed expectation must not leave the log's writer held
        let first = Task { try await ingest([report], store) }
        await storage.heldSync()
        let eventID = try #require(EventID(id))
        #expect(try store.storedPosition(of: eventID, tenant: "acme")?.isSettled == false, "in flight, not readable")

        await expectStreamMoved([report], store, stream: "record/R-9", to: 1)
        await expectStreamMoved([changed], store, stream: "record/R-9", to: 1)

        storage.open()
        #expect(try await first.value.appended == 1)
        await store.awaitSettled(timeout: .seconds(30))
        #expect(try store.storedPosition(of: eventID, tenant: "acme")?.isSettled == true)
        let again = try await ingest([report], store)
        #expect(again.appended == 0 && again.duplicates == 1)
        let refused = try await ingest([changed], store)
        #expect(refused.appended == 0 && refused.rejected == 1)
        #expect(refused.errors.first?.message.contains("is already used by the event stored at") == true, "\(refused.errors)")
        #expect(try store.readStream(tenant: "acme", stream: "record/R-9").count == 1)
        try await store.close()
    }

    /// A line on a stream another append has events in flight on is not decided against
    /// the stream without them (which the store would refuse anyway): the ingest says the
    /// stream moved, and once the other append settles (`awaitSettled`) it is decided again
    /// — what the server's retry does.
    @Test(.timeLimit(.minutes(2))) func aLineOnAStreamWithEventsInFlightWaitsForThemToSettle() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = GatedSyncStorage()
        let store = try await EventStore.open(at: dir, storage: storage)
        #expect(try await ingest(setupLines, store).appended == setupLines.count)
        let report = line("OutOfStockReported", #""recordId":"R-9","customerId":"C-1","productId":"P-1","size":"M","quantity":2"#)
        let delivery = line("DeliveryRecorded", #""recordId":"R-9","quantity":1"#)

        storage.close()
        defer { storage.open() }  // a failed expectation must not leave the log's writer held
        let first = Task { try await ingest([report], store) }
        await storage.heldSync()
        await expectStreamMoved([delivery], store, stream: "record/R-9", to: 1)
        storage.open()
        #expect(try await first.value.appended == 1)
        await store.awaitSettled(timeout: .seconds(30))
        #expect(try await ingest([delivery], store).appended == 1)
        #expect(try store.readStream(tenant: "acme", stream: "record/R-9").map(\.streamVersion) == [1, 2])
        try await store.close()
    }

    /// Two appends on two partitions, the earlier one's fsync held, so the later one
    /// settles first: its event is acknowledged, and the plain reader shows it, but a
    /// reader in recorded order (a live feed's, a paged read's) stops before it until the
    /// earlier event settles — then reads both, the earlier first. Merged at the
    /// acknowledged ends it read the later event on its own, and the earlier one after it.
    @Test(.timeLimit(.minutes(2))) func aReaderInRecordedOrderWaitsForAnEarlierAppendInFlight() async throws {
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
        func event(_ stream: String, _ n: UInt64) -> NewEvent {
            NewEvent(id: EventID(high: 7, low: n), type: "Test", tenant: "acme", stream: stream, businessTime: 1_000,
                     actor: "u", correlationId: nil, data: Array("{}".utf8), expectedVersion: .any)
        }
        #expect(try store.recordedOrderReader.endOffsets() == [0, 0])

        storage.close()
        defer { storage.open() }  // a failed expectation must not leave the log's writer held
        let first = Task { try await store.submit([event(early, 1)]).acknowledged() }
        await storage.heldSync()
        _ = try await store.submit([event(late, 2)]).acknowledged()
        #expect(try store.reader.endOffsets() == [0, 1], "acknowledged")
        #expect(try store.recordedOrderReader.endOffsets() == [0, 0], "recorded after an event in flight")

        storage.open()
        _ = try await first.value
        #expect(try store.recordedOrderReader.endOffsets() == [1, 1])
        var reader = try RecordedOrderReader(source: store.recordedOrderReader, from: [0, 0], to: [1, 1])
        #expect(try reader.next()?.stream == early)
        #expect(try reader.next()?.stream == late)
        #expect(try reader.next() == nil)
        try await store.close()
    }
}
