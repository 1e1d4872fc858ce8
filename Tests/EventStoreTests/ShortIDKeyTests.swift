import Foundation
import KVStore
import Testing
@testable import EventLog
@testable import EventStore

/// The index files an id under 64 bits of it (`ScopedID.shortKey`) and tells ids that
/// share them apart by the stored event: every such id must be stored once and found as
/// itself — whichever order the appends reach the index in, across a reopen and a
/// rebuild from the log.
@Suite struct ShortIDKeyTests {
    static let tenant = "acme"

    /// An id of `tenant` other than `id`, with the same short key (and high half `high`).
    static func colliding(with id: EventID, high: UInt64, tenant: String = tenant) -> EventID {
        let tenantHash = StreamHash(key: Array(tenant.utf8))
        let target = ScopedID(tenant: tenant, id: id).shortKey
        let scopedLow = target ^ StreamHash.mix(high ^ tenantHash.k0)
        let other = EventID(high: high, low: scopedLow ^ tenantHash.k1)
        precondition(other != id && ScopedID(tenant: tenant, id: other).shortKey == target, "not a colliding id")
        return other
    }

    static func event(_ id: EventID, _ stream: String, text: String = "") -> NewEvent {
        NewEvent(id: id, type: "Test", tenant: tenant, stream: stream, businessTime: 1_000, actor: "u", correlationId: nil,
                 data: Array("payload \(stream)\(text)".utf8), expectedVersion: .any)
    }

    static func options() -> StoreOptions { .forTests(partitions: 4) }

    static func directory(_ name: String) -> String {
        NSTemporaryDirectory() + "backorder-short-id-\(name)-\(UUID().uuidString.prefix(8))"
    }

    /// Checks every event is found at its own position and taken as a duplicate when sent
    /// again; an id with the same short key that was never appended is not found; the same
    /// id with other content is refused, naming where the original is.
    static func checkFoundApart(_ dir: String, _ events: [NewEvent], at positions: [Position], versions: [Int64]? = nil, never: EventID) async throws {
        let store = try await EventStore.open(at: dir, options: options())
        for (event, position) in zip(events, positions) {
            #expect(try store.storedPosition(of: event.id, tenant: tenant)?.position == position, "id \(event.id)")
        }
        #expect(try store.storedPosition(of: never, tenant: tenant) == nil, "an id never appended")
        let again = try await store.append(events)
        let versions = versions ?? positions.map { _ in 1 }
        #expect(again == zip(positions, versions).map { AppendOutcome.duplicate($0, version: $1) })
        let changed = event(events[1].id, events[1].stream, text: " changed")
        await #expect(throws: EventStoreError.idConflict(tenant: tenant, id: changed.id, original: "the event stored at \(positions[1])")) {
            _ = try await store.append([changed])
        }
        try await store.close()
    }

    /// Rows under whole ids (`I`): an id whose short key an earlier one holds.
    static func wholeIDRows(_ dir: String) throws -> Int {
        let rows = try KVStore.open(at: dir + "/index", mode: .readOnly, options: StoreIndex.keyValueOptions(memoryBytes: 1 << 20))
        defer { try? rows.close() }
        let it = rows.snapshot().makeIterator(lower: [IndexRow.fullIDTag], upper: [IndexRow.fullIDTag + 1])
        try it.seekToFirst()
        var count = 0
        while it.isValid {
            #expect(it.key.count == IndexRow.keyBytes)
            count += 1
            try it.next()
        }
        return count
    }

    @Test func idsSharingAShortKeyAreStoredApartAndFoundAsThemselves() async throws {
        let dir = Self.directory("apart")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = EventID(high: 0x1234, low: 0x5678)
        let ids = [a, Self.colliding(with: a, high: 99), Self.colliding(with: a, high: 12_345)]
        let events = ids.enumerated().map { Self.event($1, "R-\($0)") }
        let store = try await EventStore.open(at: dir, options: Self.options())
        var positions: [Position] = []
        for event in events {  // one append each: every id after the first finds its short key taken
            let outcome = try await store.append([event])
            guard case let .appended(position, _) = try #require(outcome.first) else { Issue.record("not appended: \(outcome)"); return }
            positions.append(position)
        }
        try await store.close()
        #expect(try Self.wholeIDRows(dir) == 2)
        let never = Self.colliding(with: a, high: 7)
        try await Self.checkFoundApart(dir, events, at: positions, never: never)

        // Rebuilt from the log, partition by partition: the rows may file them in
        // another order, and still find each as itself.
        try FileManager.default.removeItem(atPath: dir + "/index")
        let rebuilt = try await EventStore.open(at: dir, options: Self.options())
        #expect(rebuilt.indexRebuildReason == "the index is missing")
        try await rebuilt.close()
        #expect(try Self.wholeIDRows(dir) == 2)
        try await Self.checkFoundApart(dir, events, at: positions, never: never)
    }

    /// Two ids sharing a short key in one stream and one log batch: rebuilt from the log,
    /// the batch's lookups find the key free for both, and the second must still see that
    /// the first took it.
    @Test func aRebuildTellsApartIdsSharingAShortKeyInOneBatch() async throws {
        let dir = Self.directory("batch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = EventID(high: 0x77, low: 0x88)
        let events = [Self.event(a, "R-1"), Self.event(Self.colliding(with: a, high: 5), "R-1", text: " second")]
        let store = try await EventStore.open(at: dir, options: Self.options())
        let positions = try await store.append(events).map(\.position)
        try await store.close()
        #expect(positions[1].offset == positions[0].offset + 1 && positions[1].partition == positions[0].partition)
        try FileManager.default.removeItem(atPath: dir + "/index")
        try await EventStore.open(at: dir, options: Self.options()).close()
        #expect(try Self.wholeIDRows(dir) == 1)
        try await Self.checkFoundApart(dir, events, at: positions, versions: [1, 2], never: Self.colliding(with: a, high: 6))
    }

    /// An id row that points past the indexed end of the log is damage: the append that
    /// meets it fails saying so (and the log is left as it was), instead of failing to
    /// read an event that is not there.
    @Test func anIdRowPointingPastTheLogIsReportedAsIndexDamage() async throws {
        let dir = Self.directory("past")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: Self.options())
        _ = try await store.append([Self.event(EventID(high: 1, low: 1), "R-1")])
        try await store.close()
        let victim = EventID(high: 2, low: 2)
        let rows = try KVStore.open(at: dir + "/index", options: StoreIndex.keyValueOptions(memoryBytes: 1 << 20))
        var key: [UInt8] = [], value: [UInt8] = []
        IndexRow.appendShortKey(IndexRow.idTag, ScopedID(tenant: Self.tenant, id: victim).shortKey, to: &key)
        IndexRow.encodeValue(0, 10_000, 1, into: &value)
        try rows.put(key, value)
        try rows.freeze(metadata: rows.committedMetadata)
        try rows.close()
        let damaged = try await EventStore.open(at: dir, options: Self.options())
        #expect(damaged.indexRebuildReason == nil, "the rows' files are intact: the row is found when read")
        do {
            _ = try await damaged.append([Self.event(victim, "R-2")])
            Issue.record("an append through a row pointing past the log succeeded")
        } catch let EventStoreError.indexDamaged(reason) {
            #expect(reason.contains("points at 0:10000, past partition 0's indexed end"), "\(reason)")
        }
        #expect(try damaged.log.endOffset(partition: 0) + damaged.log.endOffset(partition: 1) + damaged.log.endOffset(partition: 2)
            + damaged.log.endOffset(partition: 3) == 1, "nothing appended")
        try await damaged.close()
    }

    /// Ids sharing a short key in flight together — in one append, and in two appends
    /// whose acknowledgements reach the index in the opposite order to their checks: the
    /// one applied first takes the short key, and the other must not write over it.
    @Test func idsSharingAShortKeyInFlightTogetherAreBothKept() async throws {
        let dir = Self.directory("inflight")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = EventID(high: 0xABCD, low: 0xEF01)
        let ids = [a, Self.colliding(with: a, high: 1), Self.colliding(with: a, high: 2), Self.colliding(with: a, high: 3)]
        let events = ids.enumerated().map { Self.event($1, "S-\($0)") }
        let store = try await EventStore.open(at: dir, options: Self.options())
        let first = try await store.submit([events[0]])
        let second = try await store.submit([events[1]])
        let third = try await store.submit([events[2], events[3]])
        // Applied newest first (the index applies an append when it is settled).
        var outcomes: [[AppendOutcome]] = []
        for submitted in [third, second, first] {
            let settlement = await submitted.settled()
            #expect(settlement.failure == nil)
            outcomes.append(settlement.outcomes.compactMap { $0 })
        }
        try await store.close()
        let positions = (outcomes[2] + outcomes[1] + outcomes[0]).map(\.position)
        #expect(Set(positions).count == 4)
        #expect(try Self.wholeIDRows(dir) == 3)
        try await Self.checkFoundApart(dir, events, at: positions, never: Self.colliding(with: a, high: 4))
    }
}
