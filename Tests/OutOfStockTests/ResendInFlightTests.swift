import EventLog
import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock
import TestSupport

/// An event sent again while the first copy is still in flight — a client that timed out
/// and retried, two producers delivering one event — is a duplicate, not an error: the
/// first copy cannot be read yet, and the append's own check compares the two.
@Suite struct ResendInFlightTests {
    /// Files whose syncs wait while the gate is closed: a log write that cannot be
    /// acknowledged (nor read) until the test opens it.
    final class GatedStorage: ForwardingStorage, @unchecked Sendable {
        let gate = NSCondition()
        var closed = false
        var waiting = 0

        func close() { gate.withLock { closed = true } }
        func open() { gate.withLock { closed = false; gate.broadcast() } }
        /// Waits until a sync is held at the gate.
        func waitForAHeldSync() { gate.withLock { while waiting == 0 { gate.wait() } } }

        func sync(_ file: any StorageFile) throws {
            gate.withLock {
                waiting += 1
                gate.broadcast()
                while closed { gate.wait() }
                waiting -= 1
            }
            try file.sync()
        }

        override func wrap(_ file: any StorageFile, path: String) -> any StorageFile {
            path.hasSuffix(".log") ? GatedFile(file, self) : file
        }
    }

    final class GatedFile: ForwardingFile, @unchecked Sendable {
        let storage: GatedStorage
        init(_ file: any StorageFile, _ storage: GatedStorage) {
            self.storage = storage
            super.init(file)
        }
        override func sync() throws { try storage.sync(inner) }
    }

    private func ingest(_ lines: [String], _ store: EventStore) async throws -> IngestReport {
        var reader = LineReader(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "the test's lines")
        return try await Ingestor(store: store, options: IngestOptions()).ingest(&reader)
    }

    @Test func aResendOfAnEventInFlightIsADuplicate() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = GatedStorage()
        let store = try await EventStore.open(at: dir, storage: storage)
        #expect(try await ingest(setupLines, store).appended == setupLines.count)
        let id = "7d3f5a2c-1b4e-4c6d-8e9f-0a1b2c3d4e5f"
        let report = line("OutOfStockReported", #""recordId":"R-9","customerId":"C-1","productId":"P-1","size":"M","quantity":2"#, id: id)
        let changed = line("OutOfStockReported", #""recordId":"R-9","customerId":"C-1","productId":"P-1","size":"M","quantity":3"#, id: id)

        storage.close()
        let first = Task { try await ingest([report], store) }
        storage.waitForAHeldSync()
        let eventID = try #require(EventID(id))
        #expect(try store.storedPosition(of: eventID, tenant: "acme")?.isSettled == false, "in flight, not readable")

        // The same event again: a duplicate of the one in flight (it used to fail reading it).
        let again = try await ingest([report], store)
        #expect(again.appended == 0 && again.duplicates == 1)
        // The same id with other content: refused, naming the event in flight.
        do {
            _ = try await ingest([changed], store)
            Issue.record("another event under an id in flight was accepted")
        } catch {
            #expect("\(error)".contains("is already used by an event being appended"), "\(error)")
        }

        storage.open()
        let stored = try await first.value
        #expect(stored.appended == 1)
        #expect(try store.readStream(tenant: "acme", stream: "record/R-9").count == 1)
        #expect(try store.storedPosition(of: eventID, tenant: "acme")?.isSettled == true)
        try await store.close()
    }
}
