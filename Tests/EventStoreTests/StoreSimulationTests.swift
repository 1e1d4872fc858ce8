import DataGenerator
import Foundation
import Testing
@testable import EventLog
@testable import EventStore
import StorageSimulator

/// The whole event store — log, index, lock — on the fault simulator, each open as one
/// process (`currentProcess()`: after the cut, the dead store's background work touches
/// nothing): random appends, a power cut at a random storage operation (unsynced writes lost or torn, unsynced names
/// reverted), reopen, check. The index is a cache of the log: whatever the cut left of it,
/// the reopened store must know every acknowledged event (a resend is a duplicate at its
/// position), give every stream its dense versions, and append on from there.
@Suite struct StoreSimulationTests {
    static let seeds: [UInt64] = {
        let count = Int(ProcessInfo.processInfo.environment["BACKORDER_SIM_SEEDS"] ?? "") ?? 30
        return (1...UInt64(count)).map { $0 }
    }()

    private static func event(_ n: Int) -> NewEvent {
        NewEvent(id: EventID(high: 0xABC, low: UInt64(n)), type: "Test", tenant: n % 5 == 0 ? "t2" : "t1", stream: "S-\(n % 11)",
                 businessTime: Int64(n), actor: "u", data: Array("payload \(n)".utf8))
    }

    /// Small segments, recovery points and index memory: the log rolls and the index
    /// commits and compacts often.
    private static let options: StoreOptions = {
        var options = StoreOptions()
        options.log.partitionCount = 2
        options.log.segmentBytes = 64 << 10
        options.log.recoveryCheckpointBytes = 16 << 10
        options.log.preallocationBytes = 32 << 10
        options.log.lockTimeoutMilliseconds = 0
        options.indexMemoryBytes = 64 << 10
        return options
    }()

    /// Every acknowledged event is known where it was stored, with its version (a resend is
    /// a duplicate there); every stream is dense and its head in the index is its last event.
    private static func expectEverythingKnown(_ acknowledged: [Int: AppendOutcome], in store: EventStore, _ context: String) async throws {
        let resent = acknowledged.keys.sorted()
        if !resent.isEmpty {
            for (n, outcome) in zip(resent, try await store.append(resent.map(Self.event))) {
                guard case let .appended(position, version) = acknowledged[n]! else { continue }
                #expect(outcome == .duplicate(position, version: version), "\(context): event \(n) came back as \(outcome)")
            }
        }
        for tenant in ["t1", "t2"] {
            for s in 0..<11 {
                let events = try store.readStream(tenant: tenant, stream: "S-\(s)")
                #expect(events.map(\.streamVersion) == Array(stride(from: Int64(1), through: Int64(events.count), by: 1)), "\(context): \(tenant)/S-\(s)")
                #expect(try store.version(tenant: tenant, stream: "S-\(s)") == Int64(events.count))
            }
        }
    }

    /// Appends 1–40 new events; records their outcomes once acknowledged.
    /// The recorded-order cut the writer published is the log's ends after an open (nothing
    /// in flight), and never past what the log acknowledged (it is read to there).
    private static func expectCutWithinTheLog(_ store: EventStore, _ storage: any Storage, justOpened: Bool, _ context: String) throws {
        let ends = try store.reader.endOffsets()
        guard case let .value(cut) = RecordedOrderCut.read(directory: "/sim", storage: storage) else {
            #expect(!justOpened, "\(context): no readable recorded-order cut after the open")
            return
        }
        if justOpened { #expect(cut == ends, "\(context): cut \(cut) after the open of a log ending at \(ends)") }
        #expect(zip(cut, ends).allSatisfy { $0 <= $1 }, "\(context): cut \(cut) past the acknowledged ends \(ends)")
    }

    private static func appendSome(_ store: EventStore, next: inout Int, random: inout SplitMix64, acknowledged: inout [Int: AppendOutcome]) async throws {
        let count = Int.random(in: 1...40, using: &random)
        let batch = (next..<(next + count)).map(Self.event)
        next += count
        for (n, outcome) in zip(batch.map { Int($0.id.low) }, try await store.append(batch)) { acknowledged[n] = outcome }
    }

    @Test(arguments: seeds)
    func powerLossNeverLosesAnAcknowledgedEventOrConfusesTheIndex(seed: UInt64) async throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed)
        var acknowledged: [Int: AppendOutcome] = [:]
        var next = 0, rebuilt = 0
        for round in 0..<5 {
            let store = try await EventStore.open(at: "/sim", options: Self.options, storage: storage.currentProcess())
            if store.indexRebuildReason != nil { rebuilt += 1 }
            try await Self.expectEverythingKnown(acknowledged, in: store, "seed \(seed) round \(round)")
            try Self.expectCutWithinTheLog(store, storage.currentProcess(), justOpened: true, "seed \(seed) round \(round)")
            storage.crash(afterOperations: Int.random(in: 1...600, using: &random), seed: random.next())
            let generation = storage.generation
            while storage.generation == generation {
                do { try await Self.appendSome(store, next: &next, random: &random, acknowledged: &acknowledged) } catch { break }  // the power is off
            }
            try? await store.close()
        }
        #expect(!acknowledged.isEmpty)
        if ProcessInfo.processInfo.environment["BACKORDER_SIM_VERBOSE"] != nil {
            print("seed \(seed): \(acknowledged.count) events acknowledged, index rebuilt at \(rebuilt) of 5 opens")
        }
    }

    /// I/O errors (EIO, ENOSPC) injected into every file of the store at random — log,
    /// index, lock — while appending: appends fail with an error, never a crash; after the
    /// process dies and the store is reopened without faults, every acknowledged event is
    /// there and known, and streams are dense.
    @Test(arguments: seeds.prefix(20))
    func injectedIOErrorsFailAppendsButLoseNothing(seed: UInt64) async throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed &+ 1_000)
        var acknowledged: [Int: AppendOutcome] = [:]
        var next = 0, failures = 0
        for round in 0..<4 {
            storage.setFaults(.init())
            let store = try await EventStore.open(at: "/sim", options: Self.options, storage: storage.currentProcess())
            try await Self.expectEverythingKnown(acknowledged, in: store, "seed \(seed) round \(round)")
            try Self.expectCutWithinTheLog(store, storage.currentProcess(), justOpened: true, "seed \(seed) round \(round)")
            storage.setFaults(.init(errorProbability: 0.01), seed: random.next())
            for _ in 0..<30 {
                do { try await Self.appendSome(store, next: &next, random: &random, acknowledged: &acknowledged) } catch { failures += 1 }
            }
            storage.setFaults(.init())
            try Self.expectCutWithinTheLog(store, storage.currentProcess(), justOpened: false, "seed \(seed) round \(round), after the faults")
            try? await store.close()
            storage.crashProcess()  // kill -9: whatever was not synced may be lost, locks released
        }
        #expect(!acknowledged.isEmpty)
        if ProcessInfo.processInfo.environment["BACKORDER_SIM_VERBOSE"] != nil {
            print("seed \(seed): \(acknowledged.count) events acknowledged, \(failures) appends failed on injected errors")
        }
    }
}
