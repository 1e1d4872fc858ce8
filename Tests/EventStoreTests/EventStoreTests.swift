import Foundation
import Testing
@testable import EventLog
@testable import EventStore

private func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "backorder-store-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func storeOptions(partitions: Int = 4) -> StoreOptions { .forTests(partitions: partitions) }

private func event(_ stream: String, _ n: Int, tenant: String = "acme", expected: ExpectedVersion = .any, id: EventID? = nil) -> NewEvent {
    NewEvent(id: id ?? EventID(high: UInt64(n) &* 31 &+ UInt64(stream.hashValue & 0xFFFF), low: UInt64(n)), type: "Test", tenant: tenant, stream: stream,
             businessTime: Int64(n) * 1_000, actor: "u\(n % 3)", correlationId: n % 2 == 0 ? "c\(n)" : nil,
             data: Array("payload \(stream) \(n)".utf8), expectedVersion: expected)
}

@Suite struct EventStoreTests {
    @Test func eventIDsRoundTripTheirTextForm() throws {
        let text = "5f0c9a0e-8a7e-4c2b-9a51-1c6f7f1d2a10"
        let id = try #require(EventID(text))
        #expect(id.description == text)
        #expect(EventID("5F0C9A0E-8A7E-4C2B-9A51-1C6F7F1D2A10") == id)
        for bad in ["", "5f0c9a0e8a7e4c2b9a511c6f7f1d2a10", "5f0c9a0e-8a7e-4c2b-9a51-1c6f7f1d2a1g", "5f0c9a0e-8a7e-4c2b-9a51_1c6f7f1d2a10"] {
            #expect(EventID(bad) == nil)
        }
        var random = SystemRandomNumberGenerator()
        let fresh = EventID.random(using: &random)
        #expect(EventID(fresh.description) == fresh)
        #expect(Array(fresh.description)[14] == "4")
    }

    /// Every byte at every place of the text form: an id only when the place wants that
    /// byte (a dash at 8, 13, 18 and 23, a hex digit elsewhere), with that digit's value.
    @Test func eventIDTextIsCheckedByteByByte() {
        let text = Array("5f0c9a0e-8a7e-4c2b-9a51-1c6f7f1d2a10".utf8)
        let hex = Array("0123456789abcdef".utf8), upper = Array("0123456789ABCDEF".utf8)
        for place in text.indices {
            for byte in UInt8.min...UInt8.max {
                var changed = text
                changed[place] = byte
                let parsed = changed.withUnsafeBytes { EventID(text: $0) }
                let dash = [8, 13, 18, 23].contains(place)
                let digit = hex.firstIndex(of: byte) ?? upper.firstIndex(of: byte)
                guard dash ? byte == UInt8(ascii: "-") : digit != nil else {
                    #expect(parsed == nil, "byte \(byte) at \(place) taken")
                    continue
                }
                let expected = String(decoding: changed, as: UTF8.self).lowercased()
                #expect(parsed?.description == expected, "byte \(byte) at \(place)")
            }
        }
    }

    @Test func streamsGetDenseVersionsAndReadBackInOrder() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions())
        var outcomes: [AppendOutcome] = []
        for n in 0..<30 {
            outcomes += try await store.append([event("R-\(n % 5)", n), event("C-\(n % 3)", 1_000 + n)])
        }
        #expect(outcomes.count == 60)
        for s in 0..<5 {
            let events = try store.readStream(tenant: "acme", stream: "R-\(s)")
            #expect(events.map(\.streamVersion) == Array(1...6))
            #expect(events.map { String(decoding: $0.data, as: UTF8.self) } == stride(from: s, to: 30, by: 5).map { "payload R-\(s) \($0)" })
            #expect(events.allSatisfy { $0.tenant == "acme" && $0.type == "Test" })
            #expect(try store.version(tenant: "acme", stream: "R-\(s)") == 6)
        }
        #expect(try store.readStream(tenant: "acme", stream: "R-404").isEmpty)
        #expect(try store.readStream(tenant: "other", stream: "R-1").isEmpty, "tenants never see each other's streams")
        try await store.close()
    }

    /// Appends settle in any order (each on its own task, in a server); a stream's head must
    /// still be its newest event, not the one settled last. Settled newest first, the head
    /// once went back to version 1, and the next append was given version 2 a second time.
    @Test func appendsSettledOutOfOrderKeepTheStreamsHead() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions())
        let submitted = [try await store.submit([event("R-1", 1)]), try await store.submit([event("R-1", 2)]), try await store.submit([event("R-1", 3)])]
        #expect(await submitted[2].settled().failure == nil)
        // Settled, the newest is read back with every earlier event (they are acknowledged
        // too: the log acknowledges a partition in order).
        #expect(try store.readStream(tenant: "acme", stream: "R-1").map(\.streamVersion) == [1, 2, 3])
        for append in submitted.prefix(2).reversed() { #expect(await append.settled().failure == nil) }
        #expect(try store.version(tenant: "acme", stream: "R-1") == 3)
        #expect(try await store.append([event("R-1", 4)]) == [.appended(Position(partition: store.partition(tenant: "acme", stream: "R-1"), offset: 3), version: 4)])
        #expect(try store.readStream(tenant: "acme", stream: "R-1").map(\.streamVersion) == [1, 2, 3, 4])
        try await store.close()
        let reopened = try await EventStore.open(at: dir, options: storeOptions())
        #expect(reopened.indexRebuildReason == nil)
        #expect(try reopened.version(tenant: "acme", stream: "R-1") == 4)
        #expect(try await reopened.append([event("R-1", 1)]).map(\.position.offset) == [0], "the first is a duplicate")
        try await reopened.close()
    }

    /// A server decides an append refused for another request's event in flight again only
    /// once that event is read back: `awaitSettled` waits until the appends submitted before
    /// it have settled, not for its timeout. The timeout is far beyond any settle (a
    /// CI run that starves the cooperative pool took 14 s to schedule the waiter); a wait
    /// of less than half of it can only have ended on the settle.
    @Test func awaitSettledWaitsForTheAppendsInFlight() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions())
        let start = ContinuousClock.now
        await store.awaitSettled(timeout: .seconds(600))
        #expect(ContinuousClock.now - start < .seconds(300), "nothing in flight: no wait")
        let first = try await store.submit([event("R-1", 1)])
        #expect(try store.readStream(tenant: "acme", stream: "R-1").isEmpty, "not settled yet")
        let waiter = Task {
            let start = ContinuousClock.now
            await store.awaitSettled(timeout: .seconds(600))
            return (try store.readStream(tenant: "acme", stream: "R-1").count, ContinuousClock.now - start)
        }
        #expect(await first.settled().failure == nil)
        let (read, waited) = try await waiter.value
        #expect(read == 1)
        #expect(waited < .seconds(300), "it returns once the append settles, not at its timeout")
        try await store.close()
    }

    @Test func expectedVersionConflictsNameTheStreamAndWriteNothing() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions())
        _ = try await store.append([event("R-1", 1, expected: .noStream)])
        _ = try await store.append([event("R-1", 2, expected: .exact(1)), event("R-1", 3, expected: .exact(2))])
        _ = try await store.append([event("R-1", 4, expected: .exists)])
        let endBefore = try (0..<4).map { try store.log.endOffset(partition: $0) }
        for (n, expected) in [(5, ExpectedVersion.noStream), (6, .exact(2)), (7, .exact(9))] {
            do {
                // A valid event for another stream in the same call is not written either.
                _ = try await store.append([event("R-2", 100 + n), event("R-1", n, expected: expected)])
                Issue.record("expected a conflict for \(expected)")
            } catch let error as EventStoreError {
                #expect(error == .wrongExpectedVersion(tenant: "acme", stream: "R-1", expected: expected, actual: 4))
                #expect(error.description.contains("stream R-1 of tenant acme"))
                #expect(error.description.contains("at version 4"))
            }
        }
        do {
            _ = try await store.append([event("R-3", 1, expected: .exists)])
            Issue.record("a missing stream does not exist")
        } catch let error as EventStoreError {
            #expect(error == .wrongExpectedVersion(tenant: "acme", stream: "R-3", expected: .exists, actual: 0))
        }
        #expect(try (0..<4).map { try store.log.endOffset(partition: $0) } == endBefore)
        #expect(try store.version(tenant: "acme", stream: "R-2") == 0)
        try await store.close()
    }

    @Test func duplicatesAreAcknowledgedWithTheirOriginalPositionAcrossRestarts() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let events = (0..<200).map { event("R-\($0 % 20)", $0) }
        var store = try await EventStore.open(at: dir, options: storeOptions())
        let first = try await store.append(events)
        // Within one call, a repeated id is a duplicate of the first occurrence.
        let again = try await store.append([events[0], events[0]])
        #expect(again == [.duplicate(first[0].position, version: 1), .duplicate(first[0].position, version: 1)])
        try await store.close()
        store = try await EventStore.open(at: dir, options: storeOptions())
        let replay = try await store.append(events)
        for (original, duplicate) in zip(first, replay) {
            guard case let .appended(position, version) = original else { Issue.record("\(original)"); continue }
            #expect(duplicate == .duplicate(position, version: version))
        }
        let total = try (0..<4).reduce(Int64(0)) { $0 + (try store.log.endOffset(partition: $1)) }
        #expect(total == 200, "nothing was written twice")
        try await store.close()
    }

    /// An id is an idempotency key within its tenant: another tenant may use it, and the
    /// same tenant may only send the same event under it again — a different event is
    /// refused whole, in the same call, while in flight, once stored and after a reopen.
    @Test func idsAreScopedByTenantAndAReusedIdWithOtherContentIsRefused() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var store = try await EventStore.open(at: dir, options: storeOptions())
        let original = event("R-1", 1, tenant: "t001")
        let stored = try await store.append([original])
        var otherTenant = event("R-1", 1, tenant: "t002")
        otherTenant.id = original.id
        guard case .appended = try await store.append([otherTenant])[0] else { Issue.record("another tenant's event with the same id is new"); return }
        #expect(try store.storedPosition(of: original.id, tenant: "t002") != nil)
        #expect(try store.storedPosition(of: original.id, tenant: "t003") == nil)

        var changed = original
        changed.data = Array("another payload".utf8)
        var retry = original
        retry.expectedVersion = .exact(0)  // a retry may state its check differently
        let ends = try (0..<4).map { try store.log.endOffset(partition: $0) }
        for attempt in [[changed], [event("R-2", 2, tenant: "t001"), changed], [retry, changed]] {
            do {
                _ = try await store.append(attempt)
                Issue.record("a reused id with other content was accepted")
            } catch let EventStoreError.idConflict(tenant, id, original) {
                #expect(tenant == "t001" && id == changed.id, "\(original)")
            }
        }
        #expect(try (0..<4).map { try store.log.endOffset(partition: $0) } == ends, "a refused append writes nothing")
        var twice = event("R-3", 3, tenant: "t001")
        var twin = twice
        twin.actor = "someone else"
        await #expect(throws: EventStoreError.idConflict(tenant: "t001", id: twice.id, original: "event 1 of this append")) {
            _ = try await store.append([twice, twin])
        }
        twice.expectedVersion = .noStream
        _ = try await store.append([twice])
        #expect(try await store.append([retry]) == [.duplicate(stored[0].position, version: 1)])

        // The same, with the index rebuilt from the log (ids scoped at rebuild too).
        try await store.close()
        try FileManager.default.removeItem(atPath: dir + "/index")
        store = try await EventStore.open(at: dir, options: storeOptions())
        #expect(store.indexRebuildReason != nil)
        #expect(try await store.append([retry]) == [.duplicate(stored[0].position, version: 1)])
        await #expect(throws: EventStoreError.idConflict(tenant: "t001", id: changed.id, original: "the event stored at \(stored[0].position)")) {
            _ = try await store.append([changed])
        }
        try await store.close()
    }

    @Test func indexesAreRebuiltFromTheLogWhenLostOrUnclean() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let events = (0..<500).map { event("S-\($0 % 50)", $0) }
        var store = try await EventStore.open(at: dir, options: storeOptions())
        let first = try await store.append(events)
        try await store.close()
        // Lose the index's files but its manifest: the rows it lists are missing.
        for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/index") where name.hasSuffix(".sst") {
            try FileManager.default.removeItem(atPath: dir + "/index/" + name)
        }
        store = try await EventStore.open(at: dir, options: storeOptions())
        #expect(try await store.append(events) == first.map { outcome -> AppendOutcome in
            guard case let .appended(p, v) = outcome else { return outcome }
            return .duplicate(p, version: v)
        })
        for s in 0..<50 { #expect(try store.readStream(tenant: "acme", stream: "S-\(s)").count == 10) }
        _ = try await store.append([event("S-1", 9_999, expected: .exact(10))])
        try await store.close()
    }

    @Test func indexesBuiltFromAnotherLogAreRebuilt() async throws {
        let dir = temporaryDirectory()
        let other = temporaryDirectory("other")
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        var store = try await EventStore.open(at: dir, options: storeOptions())
        _ = try await store.append((0..<100).map { event("A-\($0 % 9)", $0) })
        try await store.close()
        store = try await EventStore.open(at: other, options: storeOptions())
        _ = try await store.append((1_000..<1_050).map { event("B-\($0 % 9)", $0) })
        try await store.close()
        // Put the other log in place, keeping this store's (now foreign) indexes.
        try FileManager.default.removeItem(atPath: dir + "/log")
        try FileManager.default.copyItem(atPath: other + "/log", toPath: dir + "/log")
        store = try await EventStore.open(at: dir, options: storeOptions())
        let outcome = try await store.append([event("A-1", 1)])
        guard case .appended = outcome.first else { Issue.record("an id that is not in this log is new, not \(outcome)"); return }
        #expect(try store.version(tenant: "acme", stream: "A-1") == 1)
        #expect(try store.version(tenant: "acme", stream: "B-1") == 6)
        try await store.close()
    }

    @Test func partitionReadsSeeEveryEventOnce() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions(partitions: 2))
        _ = try await store.append((0..<1_000).map { event("R-\($0 % 37)", $0) })
        var seen = Set<EventID>()
        for partition in 0..<2 {
            var cursor = try store.events(partition: partition, from: 0)
            var expected: Int64 = 0
            while let batch = try cursor.next() {
                for stored in batch {
                    #expect(stored.position.offset == expected)
                    expected += 1
                    #expect(seen.insert(stored.id).inserted)
                }
            }
        }
        #expect(seen.count == 1_000)
        try await store.close()
    }

    @Test func manyEventsAreSplitIntoBatchesAndIndexesGrow() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = storeOptions(partitions: 1)
        options.maxEventsPerBatch = 1_000
        let store = try await EventStore.open(at: dir, options: options)
        // More distinct ids and streams than the tables' initial capacity: they must grow.
        let outcomes = try await store.append((0..<40_000).map { event("R-\($0)", $0) })
        #expect(outcomes.count == 40_000)
        #expect(try store.log.endOffset(partition: 0) == 40_000)
        #expect(try store.readStream(tenant: "acme", stream: "R-39999").count == 1)
        let duplicates = try await store.append((0..<40_000).map { event("R-\($0)", $0) })
        #expect(duplicates.allSatisfy { if case .duplicate = $0 { true } else { false } })
        try await store.close()
    }
}

@Suite struct SubscriptionTests {
    @Test func catchUpSwitchesFromHistoryToLiveWithoutGapOrDuplicate() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try await EventStore.open(at: dir, options: storeOptions(partitions: 3))
        _ = try await store.append((0..<1_000).map { event("R-\($0 % 41)", $0) })
        let subscription = try store.subscribe(pollMilliseconds: 5)
        let live = Task {
            for round in 0..<10 {
                _ = try await store.append((0..<50).map { event("L-\($0 % 7)", 10_000 + round * 50 + $0) })
                try await Task.sleep(for: .milliseconds(3))
            }
        }
        var seen = Set<EventID>()
        var next = [Int64](repeating: 0, count: 3)
        for try await batch in subscription {
            for event in batch.events {
                #expect(event.position.offset == next[batch.partition], "dense, in order, no gap")
                next[batch.partition] = event.position.offset + 1
                #expect(seen.insert(event.id).inserted, "no duplicate")
            }
            #expect(batch.nextOffset == next[batch.partition])
            if seen.count == 1_500 { break }
        }
        try await live.value
        #expect(seen.count == 1_500)
        // Resuming from a checkpoint continues exactly there.
        var resumed = try store.subscribe(from: next).makeAsyncIterator()
        _ = try await store.append([event("R-1", 99_999)])
        let batch = try await resumed.next()
        #expect(batch?.events.count == 1)
        #expect(throws: EventStoreError.self) { _ = try store.subscribe(from: [0]) }
        try await store.close()
    }
}
