import BackorderServer
import EventStore
import Foundation
import Hummingbird
import HummingbirdTesting
import OutOfStock
import RecordsView
import Testing

/// The server's records view: every query sees every append acknowledged before it, while
/// publications go from memory (sealed rows) to commits; at close everything is committed.
@Suite(.serialized) struct LiveViewTests {
    @Test func queriesSeeEachAppendAndCloseCommitsEverything() async throws {
        let fixture = try await RouteTests.Fixture.make()
        let directory = fixture.served.options.directory
        let token: HTTPFields = [.authorization: "Bearer " + fixture.token["t001"]!]
        try await fixture.app.test(.router) { client in
            // More appends than publications kept in memory before a commit, each followed
            // by a query that must see it.
            for n in 1...40 {
                let line = #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-\#(n)","number":"\#(n)","name":"Customer \#(n)"}}"#
                try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: token, body: ByteBuffer(string: line + "\n")) {
                    #expect($0.status == .created)
                }
                try await client.execute(uri: "/v1/tenants/t001/customers/C-\(n)", method: .get, headers: token) { response in
                    #expect(response.status == .ok, "customer \(n) appended just before")
                }
            }
            #expect((fixture.served.view.latest?.generation ?? 0) >= 40, "a publication per waiting query")
        }
        try await fixture.served.close()
        // Reopened from disk as the CLI does, without catching up: nothing left out.
        let access = try RecordsViewAccess.open(root: directory, source: try await EventReader.open(at: directory), freshness: .staleOK)
        #expect(access.behind == 0, "the view was committed at close")
        let customer = try access.queries(tenant: "t001").customer("C-40")
        #expect(customer.name == "Customer 40")
        try access.close()
        try? FileManager.default.removeItem(atPath: fixture.directory)
    }
}

/// A failing read of the log does not stop the server's view: it reopens from its last
/// commit and catches up once the log reads again; meanwhile it says it is failing.
@Suite struct LiveViewRetryTests {
    /// The store's reader, whose lane reads throw while `broken` is set.
    final class FlakySource: EventSource, @unchecked Sendable {
        let base: EventReader
        let lock = NSLock()
        var broken = false

        init(_ base: EventReader) { self.base = base }

        struct ReadFailed: Error {}

        var partitionCount: Int { base.partitionCount }
        var sourceID: String? { base.sourceID }
        var offsetsAreDense: Bool { base.offsetsAreDense }
        func endOffsets() throws -> [Int64] { try base.endOffsets() }
        func events(partition: Int, from offset: Int64) throws -> EventCursor {
            if lock.withLock({ broken }) { throw ReadFailed() }
            return try base.events(partition: partition, from: offset)
        }
        func readEvent(at position: Position) throws -> StoredEvent { try base.readEvent(at: position) }
        func lane(tenant: String, stream: String) -> Int { base.lane(tenant: tenant, stream: stream) }
        func offsets(recordedAfter moment: Int64) throws -> [Int64] { try base.offsets(recordedAfter: moment) }
        func historyMark(lane: Int, at offset: Int64) throws -> [UInt8]? { try base.historyMark(lane: lane, at: offset) }
        func makeDurable() throws { try base.makeDurable() }
    }

    static func reports(_ range: Range<Int>) -> [NewEvent] {
        range.map { i in
            var data = EventData()
            data[.recordId] = .string("R-\(i)")
            data[.customerId] = .string("C-1")
            data[.productId] = .string("P-1")
            data[.size] = .string("M")
            data[.quantity] = .integer(1)
            return NewEvent(id: EventID(high: 7, low: UInt64(i)), type: "OutOfStockReported", schemaVersion: 2, tenant: "t001",
                            stream: "record/R-\(i)", businessTime: 1_767_225_600_000_000 + Int64(i), actor: "u1", data: data.encoded())
        }
    }

    /// A store of two partitions holding `reports(0..<10)`.
    static func storeOfTenReports(at directory: String) async throws -> EventStore {
        var options = StoreOptions()
        options.log.partitionCount = 2
        let store = try await EventStore.open(at: directory, options: options)
        _ = try await store.append(reports(0..<10))
        return store
    }

    // Alone it takes 0.4 s; beside the suite's heavy tests on 2 cores its tasks wait for the
    // cooperative pool (13 s beside three of them here, over 60 s once in a full CI run).
    @Test(.timeLimit(.minutes(3))) func aFailingReadIsRetriedAndTheViewCatchesUp() async throws {
        let directory = NSTemporaryDirectory() + "backorder-liveview-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await Self.storeOfTenReports(at: directory)
        let source = FlakySource(store.reader)
        let (failures, failed) = AsyncStream<Double>.makeStream()
        let view = try LiveView(root: directory, source: source, publishInterval: 0, maxRetryDelay: 0.05,
                                onFailure: { _, retryIn in failed.yield(retryIn) })
        let first = try await view.snapshot(covering: try source.endOffsets(), timeout: 30)
        #expect(first.positions.reduce(0, +) == 10)

        // Reads fail: the view says so, and goes on trying.
        source.lock.withLock { source.broken = true }
        _ = try await store.append(Self.reports(10..<25))
        let ends = try source.endOffsets()
        view.poke()
        var retries = failures.makeAsyncIterator()
        let firstDelay = await retries.next()
        let secondDelay = await retries.next()
        #expect(firstDelay == 0.05 && secondDelay == 0.05, "0.1 s doubling, capped at maxRetryDelay")
        #expect(view.failures >= 2)
        await #expect(throws: LiveViewError.self) { _ = try await view.snapshot(covering: ends, timeout: 0.2) }
        #expect(view.latest?.positions == first.positions, "the last publication still answers what it covers")

        // Reads work again: the view catches up from its last commit, and is well.
        source.lock.withLock { source.broken = false }
        let caughtUp = try await view.snapshot(covering: ends, timeout: 30)
        #expect(caughtUp.positions.reduce(0, +) == 25)
        #expect(view.failures == 0 && view.failure == nil)
        try view.close()
        try await store.close()
    }

    /// After a catch-up the view lets appends gather (`catchUpGap`) — but a query that waits
    /// for them, and closing, end the gather at once. The gap (10 minutes) is far longer than
    /// the query's timeout and than the time allowed to close (2 minutes each: beside the
    /// suite's heavy tests on 2 cores, a CI run took 25 s for what takes 0.1 s alone), so a
    /// gather that ignored either fails here instead of taking its 10 minutes.
    @Test(.timeLimit(.minutes(10))) func aWaitingQueryAndCloseEndTheGatherAtOnce() async throws {
        let directory = NSTemporaryDirectory() + "backorder-liveview-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await Self.storeOfTenReports(at: directory)
        let view = try LiveView(root: directory, source: store.reader, publishInterval: 1_200, catchUpGap: 600)
        _ = try await view.snapshot(covering: try store.reader.endOffsets(), timeout: 120)
        // Applied after a poke, then gathering; the next append's poke does not wake it.
        _ = try await store.append(Self.reports(10..<15))
        view.poke()
        _ = try await store.append(Self.reports(15..<20))
        view.poke()
        let current = try await view.snapshot(covering: try store.reader.endOffsets(), timeout: 120)
        #expect(current.positions.reduce(0, +) == 20)
        // Applied again, so gathering again: close ends it and commits what was applied.
        _ = try await store.append(Self.reports(20..<22))
        view.poke()
        let clock = ContinuousClock(), closing = clock.now
        try view.close()
        #expect(clock.now - closing < .seconds(120), "close did not wait out the gap")
        try await store.close()
    }
}
