import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock

/// The streams' states a server's requests share (`StreamStateCache`): a later request
/// decides against them without reading the log, and an entry the store has moved past —
/// another writer appended to its stream — is never used.
@Suite struct StreamStateCacheTests {
    /// The store, counting the streams read from the log.
    final class CountingStore: EventAppender, @unchecked Sendable {
        let base: EventStore
        private let lock = NSLock()
        private var reads = 0
        init(_ base: EventStore) { self.base = base }
        var streamReads: Int { lock.withLock { reads } }

        func storedPosition(of id: EventID, tenant: String) throws -> StoredID? { try base.storedPosition(of: id, tenant: tenant) }
        func readEvent(at position: Position) throws -> StoredEvent { try base.readEvent(at: position) }
        func readStream(tenant: String, stream: String) throws -> [StoredEvent] {
            lock.withLock { reads += 1 }
            return try base.readStream(tenant: tenant, stream: stream)
        }
        func submitEvents(_ events: [NewEvent]) async throws -> any PendingAppend { try await base.submitEvents(events) }
        var durabilityStatement: String { base.durabilityStatement }
        func streamVersion(tenant: String, stream: String) throws -> Int64? { try base.streamVersion(tenant: tenant, stream: stream) }
    }

    private func run(_ lines: [String], _ store: any EventAppender, shared: StreamStateCache?) async throws -> IngestReport {
        var options = IngestOptions()
        options.sharedStates = shared
        var reader = LineReader(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "the test's lines")
        return try await Ingestor(store: store, options: options).ingest(&reader)
    }

    private func report(_ record: String, customer: String = "C-1") -> String {
        line("OutOfStockReported", #""recordId":"\#(record)","customerId":"\#(customer)","productId":"P-1","size":"M","quantity":1"#)
    }

    @Test func aLaterIngestDecidesFromTheSharedStatesWithoutReadingTheLog() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir)
        let counting = CountingStore(store)
        let shared = StreamStateCache(capacity: 100)
        let setup = try await run(setupLines, counting, shared: shared)
        #expect(setup.appended == setupLines.count && shared.count == 4, "C-1, C-2, P-1 and R-1: \(shared.count)")

        // A request that refers to the customer and product: decided from the shared states.
        let before = counting.streamReads
        #expect(try await run([report("R-2")], counting, shared: shared).appended == 1)
        #expect(counting.streamReads == before, "no stream was read from the log")
        // Without them, the same kind of request reads the customer and the product.
        #expect(try await run([report("R-3")], counting, shared: nil).appended == 1)
        #expect(counting.streamReads == before + 2)
        try await store.close()
    }

    @Test func anEntryTheStoreMovedPastIsNotUsed() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir)
        let shared = StreamStateCache(capacity: 100)
        _ = try await run(setupLines, store, shared: shared)
        // Another writer removes customer C-1; the shared states still hold it registered.
        #expect(try await run([line("CustomerRemoved", #""customerId":"C-1""#)], store, shared: nil).appended == 1)
        let refused = try await run([report("R-2")], store, shared: shared)
        #expect(refused.rejected == 1 && refused.appended == 0)
        #expect(refused.errors.first?.message.contains("was removed") == true, "\(refused.errors)")
        try await store.close()
    }

    /// A request that read a stream at version 3 and finished after one that left it at 4
    /// does not put the older state back.
    @Test func anOlderStateDoesNotReplaceANewerOne() {
        let cache = StreamStateCache(capacity: 10)
        let key = StreamKey(tenant: "t", stream: "customer/C-1")
        cache.keep([(key, CachedStream(version: 4, state: .none))])
        cache.keep([(key, CachedStream(version: 3, state: .none))])
        #expect(cache.state(key, version: 4) != nil && cache.state(key, version: 3) == nil)
    }

    @Test func aRejectedInputKeepsNothingAndTheOldestGenerationGoes() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir)
        let shared = StreamStateCache(capacity: 4)
        // All or nothing: one bad line, nothing appended, nothing kept.
        let rejected = try await run(setupLines + [report("R-9", customer: "C-404")], store, shared: shared)
        #expect(rejected.rejected == 1 && rejected.appended == 0 && shared.count == 0)
        // Four streams into two generations of two: at most four kept, never more.
        _ = try await run(setupLines, store, shared: shared)
        #expect(shared.count <= 4 && shared.count >= 2, "\(shared.count)")
        try await store.close()
    }
}
