import DataGenerator
import Foundation
import Testing
@testable import EventLog
import StorageSimulator

/// Seeded power-loss simulation: random appends, a power cut at a random storage
/// operation (torn and lost unsynced writes, unsynced names reverted), reopen, check.
@Suite struct SimulationTests {
    static let seeds: [UInt64] = {
        let count = Int(ProcessInfo.processInfo.environment["BACKORDER_SIM_SEEDS"] ?? "") ?? 60
        return (1...UInt64(count)).map { $0 }
    }()

    @Test(arguments: seeds)
    func powerLossNeverLosesAnAcknowledgedAppend(seed: UInt64) async throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed)
        var opts = options(partitions: 2, segmentBytes: 64 << 10)
        opts.recoveryCheckpointBytes = 16 << 10
        opts.preallocationBytes = 32 << 10
        // What each partition holds for sure (acknowledged) and what it may hold.
        var acknowledged: [[Record]] = [[], []]
        var submitted: [[Int64: Record]] = [[:], [:]]
        var next = 0
        var repaired = 0
        for round in 0..<6 {
            let log = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
            repaired += log.recoveryEvents.count
            // Everything acknowledged so far is there, intact, in order; nothing else but
            // records that were submitted (and may have reached the disk unacknowledged).
            for p in 0..<2 {
                let records = try readAll(log, partition: p)
                #expect(records.count >= acknowledged[p].count, "seed \(seed) round \(round): partition \(p) lost acknowledged records")
                #expect(Array(records.prefix(acknowledged[p].count)) == acknowledged[p], "seed \(seed) round \(round): acknowledged records altered")
                for record in records.dropFirst(acknowledged[p].count) {
                    #expect(submitted[p][record.offset] == record, "seed \(seed) round \(round): unacknowledged garbage at \(record.offset)")
                }
                acknowledged[p] = records
            }
            storage.crash(afterOperations: Int.random(in: 1...400, using: &random), seed: random.next())
            let generation = storage.generation
            while storage.generation == generation {
                let p = Int.random(in: 0..<2, using: &random)
                let base = try log.endOffset(partition: p) // one appender: offsets are predictable
                let (batch, records) = try randomBatch(base: base, next: &next, maxRecords: 30, keys: 7, using: &random)
                for r in records { submitted[p][r.offset] = r }
                do {
                    let ack = try await log.append(batch, partition: p)
                    #expect(ack.baseOffset == base)
                    acknowledged[p] += records
                } catch {
                    break // the power is off: the appender is gone
                }
            }
            try? await log.close() // the power is off: the final sync fails
        }
        if ProcessInfo.processInfo.environment["BACKORDER_SIM_VERBOSE"] != nil {
            print("seed \(seed): \(acknowledged[0].count + acknowledged[1].count) records kept, \(repaired) torn tails repaired")
        }
    }

    /// `none` durability with `sync()` now and then: every record appended before a `sync()`
    /// returned survives the power cut (what views rely on before they commit positions);
    /// records after it may be lost, never altered.
    @Test(arguments: seeds.prefix(30))
    func recordsBeforeASyncSurviveAPowerCutInNoneMode(seed: UInt64) async throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed &+ 500)
        var opts = options(partitions: 2, segmentBytes: 64 << 10)
        opts.durability = .none
        opts.recoveryCheckpointBytes = 16 << 10
        opts.preallocationBytes = 32 << 10
        var synced: [[Record]] = [[], []]
        var syncs = 0, next = 0
        for round in 0..<6 {
            let log = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
            for p in 0..<2 {
                let records = try readAll(log, partition: p)
                #expect(Array(records.prefix(synced[p].count)) == synced[p], "seed \(seed) round \(round): partition \(p) lost or altered records synced before the cut")
                synced[p] = records  // a writable open makes what it found durable
            }
            storage.crash(afterOperations: Int.random(in: 1...400, using: &random), seed: random.next())
            let generation = storage.generation
            var appended = synced
            while storage.generation == generation {
                let p = Int.random(in: 0..<2, using: &random)
                let (batch, records) = try randomBatch(base: try log.endOffset(partition: p), next: &next, maxRecords: 20, keys: 5, using: &random)
                do {
                    _ = try await log.append(batch, partition: p)
                    appended[p] += records
                    if Int.random(in: 0..<4, using: &random) == 0 {
                        try log.sync()
                        synced = appended
                        syncs += 1
                    }
                } catch {
                    break  // the power is off
                }
            }
            try? await log.close()
        }
        #expect(syncs > 0, "seed \(seed): never synced")
    }

    /// A log opened read-only beside a `none`-mode writer of another process (a `query`
    /// that keeps the view beside `append --durability none`): its `sync` makes what it
    /// reads durable, so a view committing positions after it is never ahead of the log
    /// after a power cut. (Before, it did nothing: the writer's records were acknowledged
    /// unsynced, and lost.)
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func aReadOnlySyncMakesWhatItReadsDurable(seed: UInt64) async throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed &+ 900)
        var opts = options(partitions: 2, segmentBytes: 64 << 10, durability: .none)
        opts.preallocationBytes = 32 << 10
        let log = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
        var next = 0
        var appended: [[Record]] = [[], []]
        func appendSome() async throws {
            for _ in 0..<Int.random(in: 5...30, using: &random) {
                let p = Int.random(in: 0..<2, using: &random)
                let (batch, records) = try randomBatch(base: try log.endOffset(partition: p), next: &next, maxRecords: 20, keys: 5, using: &random)
                _ = try await log.append(batch, partition: p)
                appended[p] += records
            }
        }
        try await appendSome()
        let reader = try await WriteAheadLog.open(at: "/sim", options: options(partitions: 2, segmentBytes: 64 << 10, writable: false), storage: storage)
        let seen = try (0..<2).map { try readAll(reader, partition: $0) }
        let sawAll = seen == appended
        #expect(sawAll, "seed \(seed): the reader sees every acknowledged record (\(seen.map(\.count)) of \(appended.map(\.count)))")
        try reader.sync()
        try await appendSome()  // acknowledged, never synced
        storage.crashNow(seed: random.next())
        try? await log.close()
        try? await reader.close()
        let after = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
        for p in 0..<2 {
            let records = try readAll(after, partition: p)
            let kept = Array(records.prefix(seen[p].count)) == seen[p]
            #expect(kept, "seed \(seed): partition \(p) lost records a read-only sync made durable (\(records.count) left of \(seen[p].count))")
        }
        try await after.close()
    }
}
