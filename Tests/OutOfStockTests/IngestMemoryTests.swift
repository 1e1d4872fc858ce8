import DataGenerator
import EventLog
import EventStore
import Foundation
import StorageSimulator
import TestSupport
import Testing
@testable import OutOfStock

/// The ingestor's bounded memory: stream states and ids beyond the limits move to a
/// scratch store, and nothing the ingestor decides may change because of it.
@Suite struct IngestMemoryTests {
    @Test func spilledStatesAndIdsReadBackAsTheyWereWritten() throws {
        let memory = IngestMemory(streamLimit: 3, idLimit: 5)
        let states: [(StreamKey, CachedStream)] = [
            (StreamKey(tenant: "t1", stream: "record/R-1"), CachedStream(version: 4, state: .record(RecordState(
                status: .refunded, quantity: 12, delivered: 5, customerId: "C-1", productId: "P-ü", size: nil)))),
            (StreamKey(tenant: "t1", stream: "record/R-2"), CachedStream(version: 1, state: .record(RecordState(
                status: .pending, quantity: 3, delivered: 0, customerId: "C-2", productId: "P-2", size: "XL")))),
            (StreamKey(tenant: "t2", stream: "customer/C-1"), CachedStream(version: 2, state: .customer(CustomerState(name: "Müller", region: nil, removed: true)))),
            (StreamKey(tenant: "t2", stream: "product/P-1"), CachedStream(version: 3, state: .product(ProductState(name: "Parka", sizes: ["S", "M"], removed: false)))),
            (StreamKey(tenant: "t3", stream: "record/R-9"), CachedStream(version: 0, state: .none)),
        ]
        for (key, value) in states { try memory.setState(value, for: key) }
        let ids = (1...12).map { ScopedID(tenant: "t1", id: EventID(high: UInt64($0), low: ~UInt64($0))) }
        for (n, id) in ids.enumerated() { try memory.insert(id, fingerprint: n * 1_000_003 - 7) }
        #expect(memory.spilled > 0, "the limits must have been passed")
        for (key, value) in states {
            let found = try memory.state(key)
            #expect(found?.version == value.version && found?.state == value.state, "\(key.stream)")
        }
        #expect(try memory.state(StreamKey(tenant: "t1", stream: "record/R-3")) == nil)
        for (n, id) in ids.enumerated() { #expect(try memory.fingerprint(of: id) == n * 1_000_003 - 7) }
        #expect(try memory.fingerprint(of: ScopedID(tenant: "t1", id: EventID(high: 99, low: 99))) == nil)
        #expect(try memory.fingerprint(of: ScopedID(tenant: "t2", id: EventID(high: 1, low: ~1))) == nil, "ids are scoped by tenant")
        // A newer state in memory wins over the spilled one.
        try memory.setState(CachedStream(version: 5, state: .none), for: states[0].0)
        #expect(try memory.state(states[0].0)?.version == 5)
        #expect(memory.discard() >= states.count + ids.count, "discard counts what it held, in memory and spilled")
        #expect(try memory.state(states[1].0) == nil, "discard forgets everything")
        #expect(memory.discard() == 0)
    }

    /// A killed ingest's scratch store is removed by the next one that spills, with or
    /// without its LOCK (killed before it opened the store); a running process's, and one
    /// whose LOCK is held, are left alone.
    @Test func theScratchStoreOfAKilledIngestIsRemoved() throws {
        let parent = NSTemporaryDirectory() + "ingest-orphans-\(UInt64.random(in: 0...UInt64.max))"
        let files = FileManager.default
        try files.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? files.removeItem(atPath: parent) }
        let dead = try endedProcessID()
        let orphan = parent + "/" + IngestMemory.scratchPrefix + "\(dead)-1"
        let unopened = parent + "/" + IngestMemory.scratchPrefix + "\(dead)-2"
        let held = parent + "/" + IngestMemory.scratchPrefix + "\(dead)-3"
        let running = parent + "/" + IngestMemory.scratchPrefix + "1-4"  // init runs as long as the machine does
        for dir in [orphan, unopened, held, running] { try files.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        for dir in [orphan, held, running] {
            for file in ["LOCK", "MANIFEST", "000004.sst"] { #expect(files.createFile(atPath: dir + "/" + file, contents: Data([1, 2, 3]))) }
        }
        let lock = try PosixStorage().lock(held + "/LOCK")
        defer { lock.release() }
        let memory = IngestMemory(streamLimit: 1, idLimit: 1, scratchParent: parent)
        for n in 1...4 { try memory.insert(ScopedID(tenant: "t1", id: EventID(high: UInt64(n), low: 0)), fingerprint: n) }
        #expect(memory.spilled > 0)
        #expect(!files.fileExists(atPath: orphan) && !files.fileExists(atPath: unopened), "the killed ingests' stores are removed")
        #expect(files.fileExists(atPath: held + "/000004.sst"), "a store whose LOCK is held is left")
        #expect(files.fileExists(atPath: running + "/000004.sst"), "a running process's store is left")
        memory.discard()
        let left = try files.contentsOfDirectory(atPath: parent).sorted()
        #expect(left == [held, running].map { ($0 as NSString).lastPathComponent }.sorted(), "discard removes this ingest's own store")
    }

    /// A stream the input keeps using stays in memory across spills, and every other stream
    /// is written to the scratch store once (all states at every spill was 125 writes here).
    @Test func aStreamInUseStaysInMemoryAndOthersAreWrittenOnce() throws {
        let memory = IngestMemory(streamLimit: 4, idLimit: 1_000)
        let hot = StreamKey(tenant: "t1", stream: "customer/C-1")
        try memory.setState(CachedStream(version: 7, state: .none), for: hot)
        for i in 0..<100 {
            #expect(try memory.state(hot)?.version == 7)
            try memory.setState(CachedStream(version: 1, state: .none), for: StreamKey(tenant: "t1", stream: "record/R-\(i)"))
        }
        #expect(memory.spilled > 0 && memory.spilled < 100, "each stream written out at most once, the hot one never: \(memory.spilled)")
        for i in 0..<100 { #expect(try memory.state(StreamKey(tenant: "t1", stream: "record/R-\(i)"))?.version == 1) }
    }

    /// The same input with memory for 7 streams and 11 ids, and with the defaults: the same
    /// report line for line, the same events stored in the same order.
    @Test func tinyLimitsDecideExactlyAsTheDefaults() async throws {
        var generator = GeneratorOptions()
        generator.events = 4_000
        generator.seed = 23
        generator.tenants = 3
        generator.customersPerTenant = 30
        generator.productsPerTenant = 15
        var lines: [String] = []
        var events = EventGenerator(options: generator)
        while let l = events.next() { lines.append(String(decoding: l, as: UTF8.self)) }
        // Repeated lines (duplicates by id) and lines that break rules (rejected).
        lines += lines[100..<300]
        lines.insert("{\"type\":\"DeliveryRecorded\",\"tenant\":\"t001\",\"at\":\"2026-03-01T10:00:00Z\",\"actor\":\"u1\",\"data\":{\"recordId\":\"R-404404\",\"quantity\":1}}", at: 2_000)
        lines.insert(lines[10], at: 3_000)

        var options = IngestOptions()
        options.skipInvalid = true
        var tiny = options
        tiny.memoryStreams = 7
        tiny.memoryIDs = 11
        tiny.memoryEvents = 500
        let a = freshDirectory("defaults"), b = freshDirectory("tiny")
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let expected = try await ingest(lines, into: a, options: options)
        let found = try await ingest(lines, into: b, options: tiny)
        #expect(expected.appended > 3_000 && expected.duplicates >= 200 && expected.rejected >= 1)
        #expect(found.appended == expected.appended && found.duplicates == expected.duplicates && found.rejected == expected.rejected)
        #expect(found.errors.map { "\($0)" } == expected.errors.map { "\($0)" })
        let storeA = try await EventStore.open(at: a), storeB = try await EventStore.open(at: b)
        let eventsA = try allStoredEvents(storeA), eventsB = try allStoredEvents(storeB)
        #expect(eventsA.map(\.id) == eventsB.map(\.id))
        #expect(eventsA.map(\.streamVersion) == eventsB.map(\.streamVersion))
        #expect(eventsA.map(\.data) == eventsB.map(\.data))
        try await storeA.close()
        try await storeB.close()
    }
    /// The spool of validated events and the scratch store go through the storage the
    /// ingest is given: on the fault simulator, a spool whose writes fail stops the ingest
    /// with an error that says so, before anything is appended; without faults, the same
    /// input spilled there appends exactly what it appends from memory.
    @Test func theSpoolAndScratchStoreGoThroughTheGivenStorage() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generator = GeneratorOptions()
        generator.events = 2_000
        generator.customersPerTenant = 20
        generator.productsPerTenant = 8
        var events = EventGenerator(options: generator)
        var lines: [String] = []
        while let line = events.next() { lines.append(String(decoding: line, as: UTF8.self)) }

        let simulated = SimulatedStorage()
        try simulated.createDirectory("/tmp")
        var options = IngestOptions()
        options.memoryEvents = 100
        options.memoryStreams = 10
        options.memoryIDs = 50
        options.storage = simulated
        options.temporaryDirectory = "/tmp"
        let spilled = try await ingest(lines, into: dir + "-sim", options: options)
        defer { try? FileManager.default.removeItem(atPath: dir + "-sim") }
        let inMemory = try await ingest(lines, into: dir)
        #expect(spilled.appended == inMemory.appended && spilled.appended == 2_000)
        let left = try simulated.listDirectory("/tmp")
        #expect(left.isEmpty, "the spool and the scratch store are removed: \(left)")

        simulated.setFaults(.init(errorProbability: 1.0), seed: 1)
        do {
            _ = try await ingest(lines, into: dir + "-faulty", options: options)
            Issue.record("an ingest whose spool cannot be written must fail")
        } catch {
            #expect("\(error)".contains("temporary file") || "\(error)".contains("/tmp"), "\(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: dir + "-faulty") }
        let store = try await EventStore.open(at: dir + "-faulty")
        #expect(try allStoredEvents(store).isEmpty, "nothing appended")
        try await store.close()
    }
}
