import DataGenerator
import Foundation
import Testing
@testable import EventLog
import StorageSimulator

/// Seeded random workloads against the simulated storage with every fault it can inject:
/// power cuts (unsynced writes lost, torn, reordered; unsynced names reverted), process
/// crashes (handles die, the page cache survives), ENOSPC and EIO on any call, and bit
/// flips on read. After every crash or restart the log is reopened and checked:
/// - every record that was durable (acknowledged in fsync mode, or seen by a writable open)
///   is present, byte for byte, at its offset;
/// - every record acknowledged in `none` mode survives a process crash or a restart;
/// - nothing else is visible but records that were submitted (no garbage);
/// - reads with flipped bits return the right records or fail with a clear error.
///
/// Replay one seed: `SEED=17 swift test --filter FaultSimulationTests` (add BACKORDER_SIM_TRACE=1 to
/// see every fault, sync and crash).
/// Run many: `BACKORDER_FAULT_SEEDS=5000 swift test --filter FaultSimulationTests` (`make soak`).
@Suite struct FaultSimulationTests {
    static let seeds: [UInt64] = {
        let environment = ProcessInfo.processInfo.environment
        if let seed = environment["SEED"].flatMap(UInt64.init) { return [seed] }
        let count = Int(environment["BACKORDER_FAULT_SEEDS"] ?? "") ?? 100
        return (1...UInt64(max(1, count))).map { $0 }
    }()

    @Test(arguments: seeds)
    func randomWorkloadWithFaultsNeverLosesAnAcknowledgedRecord(seed: UInt64) async throws {
        var workload = FaultWorkload(seed: seed)
        try await workload.run()
        let figures = workload.figures
        if ProcessInfo.processInfo.environment["BACKORDER_SIM_VERBOSE"] != nil {
            print("fault simulation: seed \(seed): \(figures)")
        }
    }

    /// The same seed twice gives the same run: a failure printed with its seed replays.
    @Test func aSeedReplaysExactly() async throws {
        var first = FaultWorkload(seed: 7), second = FaultWorkload(seed: 7)
        try await first.run()
        try await second.run()
        #expect(first.figures.description == second.figures.description)
        #expect(first.durable == second.durable)
        #expect(first.figures.injectedErrors > 0 || first.figures.powerCuts > 0)
    }
}

/// What a seed did (printed with BACKORDER_SIM_VERBOSE=1; `make soak` sums them).
struct SimulationTotals: CustomStringConvertible {
    var seeds = 0
    var rounds = 0
    var powerCuts = 0
    var processCrashes = 0
    var acknowledgedRecords = 0
    var failedAppends = 0
    var injectedErrors = 0
    var flippedReads = 0
    var flipsDetected = 0
    var recordsChecked = 0
    var lost = 0

    var description: String {
        "\(seeds) seeds, \(rounds) rounds, \(powerCuts) power cuts, \(processCrashes) process crashes, "
            + "\(acknowledgedRecords) records acknowledged, \(failedAppends) appends failed by \(injectedErrors) injected errors, "
            + "\(flippedReads) reads bit-flipped (\(flipsDetected) reported as damage, the others hit bytes no reader used), "
            + "\(recordsChecked) records checked, \(lost) lost"
    }
}

/// One seed's workload: rounds of open, check, append until a crash, restart or fault.
struct FaultWorkload {
    let seed: UInt64
    var random: SplitMix64
    let storage = SimulatedStorage()
    let options: LogOptions
    /// One partition: its writer thread then does every storage call in an order that
    /// depends on the seed alone, so a seed replays exactly (two partitions' writers would
    /// interleave their calls, and with them the fault draws). SimulationTests covers two.
    let partitions = 1
    /// Per partition: records known to be on disk, in offset order (must never be lost).
    var durable: [[Record]]
    /// Per partition: records acknowledged since the last open, not yet known durable.
    var acknowledged: [[Record]]
    /// Per partition: every record submitted since the last open, by offset (may appear).
    var submitted: [[Int64: Record]]
    var next = 0
    var figures = SimulationTotals()
    let errorProbability: Double

    init(seed: UInt64) {
        self.seed = seed
        random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15)
        var options = LogOptions()
        options.partitionCount = partitions
        options.segmentBytes = Limits.minSegmentBytes
        options.lockTimeoutMilliseconds = 0
        options.preallocationBytes = 16 << 10
        options.recoveryCheckpointBytes = 8 << 10
        // fsync in two seeds of three, none in the third (interval is none plus a timer,
        // whose firing would make a run depend on the clock).
        options.durability = seed % 3 == 0 ? .none : .fsync
        self.options = options
        durable = Array(repeating: [], count: partitions)
        acknowledged = Array(repeating: [], count: partitions)
        submitted = Array(repeating: [:], count: partitions)
        errorProbability = [0, 0.002, 0.01, 0.03][Int(seed % 4)]
        figures.seeds = 1
    }

    /// What the check names on failure: the seed and how to replay it.
    var replay: String { "seed \(seed) (replay: SEED=\(seed) swift test --filter FaultSimulationTests)" }

    mutating func run() async throws {
        storage.setFaults(.init(errorProbability: errorProbability), seed: seed)
        var lastEnding = Ending.cleanClose
        for round in 0..<10 {
            figures.rounds += 1
            if traceSim { print("round \(round)") }
            let log = try await openWithRetries(round: round)
            try check(log, round: round, after: lastEnding)
            try await checkFlippedReads(round: round)
            storage.setFaults(.init(errorProbability: errorProbability))
            lastEnding = Ending.allCases.randomElement(using: &random) ?? .cleanClose
            try await appendUntil(lastEnding, log)
            try? await log.close() // with faults: the final sync may fail, and must not lose what was acknowledged
            storage.setFaults(.init())
        }
        let (errors, flips) = storage.faultCounts
        figures.injectedErrors = errors
        figures.flippedReads += flips
    }

    enum Ending: CaseIterable {
        case powerCut, processCrash, cleanClose
    }

    /// Opens the log; injected errors may fail the open, which is retried, the last time
    /// without faults. An open must never succeed with wrong contents (checked next).
    mutating func openWithRetries(round: Int) async throws -> WriteAheadLog {
        for attempt in 0..<6 {
            if attempt == 5 { storage.setFaults(.init()) }
            do {
                let log = try await WriteAheadLog.open(at: "/sim", options: options, storage: storage)
                if traceSim { print("opened") }
                storage.setFaults(.init())
                return log
            } catch let error as LogError {
                #expect(attempt < 5, "\(replay) round \(round): the open failed without injected faults: \(error)")
                #expect(Self.isInjected(error), "\(replay) round \(round): the open failed with \(error), not an injected I/O error")
                if attempt == 5 { throw error }
            }
        }
        throw TestFailure("unreachable")
    }

    /// Injected faults surface as disk-full or I/O errors, never as corruption.
    static func isInjected(_ error: LogError) -> Bool {
        switch error {
        case .diskFull, .io, .readOnly: true
        case let .writerFailed(_, reason): reason.contains("injected") || reason.contains("disk full") || reason.contains("power loss")
        default: false
        }
    }

    /// The invariants, on the log as opened (faults off).
    mutating func check(_ log: WriteAheadLog, round: Int, after ending: Ending) throws {
        for p in 0..<partitions {
            let records = try readAll(log, partition: p)
            let mustHave = ending == .powerCut ? durable[p] : durable[p] + acknowledged[p]
            if records.count < mustHave.count {
                figures.lost += mustHave.count - records.count
                print("\(replay) round \(round): lost records; recovery: \(log.recoveryEvents); files: \(storage.describe())")
            }
            #expect(records.count >= mustHave.count,
                    "\(replay) round \(round) after \(ending): partition \(p) holds \(records.count) records, \(mustHave.count) were acknowledged")
            for (i, record) in records.enumerated() {
                figures.recordsChecked += 1
                if i < mustHave.count {
                    if record != mustHave[i] { figures.lost += 1 }
                    #expect(record == mustHave[i], "\(replay) round \(round): acknowledged record \(p)/\(i) altered")
                } else {
                    #expect(submitted[p][record.offset] == record, "\(replay) round \(round): garbage at \(p)/\(record.offset)")
                }
            }
            // A writable open syncs what it found: all of it is durable now.
            durable[p] = records
            acknowledged[p] = []
            submitted[p] = [:]
        }
    }

    /// A read-only instance whose reads flip bits: every record it returns is right, and
    /// every flipped read that matters fails with a clear error instead.
    mutating func checkFlippedReads(round: Int) async throws {
        storage.setFaults(.init(bitFlipProbability: 0.05))
        defer { storage.setFaults(.init()) }
        var readOnly = options
        readOnly.writable = false
        let log: WriteAheadLog
        do {
            log = try await WriteAheadLog.open(at: "/sim", options: readOnly, storage: storage)
        } catch let error as LogError {
            figures.flipsDetected += 1
            #expect(!error.description.isEmpty)
            return
        }
        for p in 0..<partitions {
            do {
                var cursor = try log.cursor(partition: p, from: 0)
                while let batch = try cursor.next() {
                    for record in batch.recordList() {
                        let index = Int(record.offset)
                        #expect(index < durable[p].count && durable[p][index] == record,
                                "\(replay) round \(round): a flipped read returned a wrong record at \(p)/\(record.offset)")
                    }
                }
            } catch let error as LogError {
                figures.flipsDetected += 1
                guard case .corrupt = error else {
                    Issue.record("\(replay) round \(round): a flipped read failed with \(error), not a corruption error")
                    continue
                }
            }
        }
        try await log.close()
    }

    /// Appends random batches until the chosen ending, or until an append fails (a failed
    /// partition refuses every later append until the log is reopened).
    mutating func appendUntil(_ ending: Ending, _ log: WriteAheadLog) async throws {
        let appends = Int.random(in: 1...60, using: &random)
        if ending == .powerCut {
            storage.crash(afterOperations: Int.random(in: 1...300, using: &random), seed: random.next())
        }
        let generation = storage.generation
        var failed = Set<Int>()
        for _ in 0..<(ending == .powerCut ? 10_000 : appends) where storage.generation == generation && failed.count < partitions {
            let p = Int.random(in: 0..<partitions, using: &random)
            let base = Int64(durable[p].count + acknowledged[p].count)
            let (batch, records) = try randomBatch(base: base, next: &next, maxRecords: 40, keys: 5, using: &random)
            // Offsets past a failed batch are unknown: later records of that partition may
            // land anywhere after it, so only their content is predicted.
            for record in records { submitted[p][record.offset] = record }
            do {
                let ack = try await log.append(batch, partition: p)
                #expect(!failed.contains(p), "\(replay): a partition whose writer failed acknowledged an append")
                #expect(ack.baseOffset == base, "\(replay): acknowledged at \(ack.baseOffset), expected \(base)")
                figures.acknowledgedRecords += records.count
                if options.durability == .fsync { durable[p] += records } else { acknowledged[p] += records }
            } catch let error as LogError {
                figures.failedAppends += 1
                if storage.generation == generation && !failed.contains(p) {
                    #expect(Self.isInjected(error), "\(replay): an append failed with \(error), not an injected I/O error")
                }
                failed.insert(p)
            }
        }
        switch ending {
        case .powerCut:
            if storage.generation == generation { storage.crashNow(seed: random.next()) }
            figures.powerCuts += 1
        case .processCrash:
            storage.crashProcess()
            figures.processCrashes += 1
        case .cleanClose:
            break
        }
    }
}

/// Recovery must tell a torn write from a read that returned flipped bits: it cuts a tail
/// only where two walks agree and two reads of the bytes there are equal, so a device that
/// flips bits fails the open instead of making it cut acknowledged records.
@Suite struct FlippedRecoveryReadTests {
    @Test func aFlippedReadDuringRecoveryDoesNotCutAcknowledgedRecords() async throws {
        for seed in UInt64(1)...20 {
            let storage = SimulatedStorage()
            var opts = options(partitions: 1, segmentBytes: 1 << 20)
            opts.recoveryCheckpointBytes = 1 << 20 // the whole tail is after the recovery point
            opts.preallocationBytes = 4096
            let log = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
            try await appendSamples(log, 0..<100, batchSize: 10)
            storage.crashProcess() // kill -9: no final recovery point
            try? await log.close() // the process is gone: nothing more reaches the disk
            storage.setFaults(.init(bitFlipProbability: 1, flipOnlyPathsEndingWith: ".log"), seed: seed)
            let reopened = try? await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
            storage.setFaults(.init())
            try? await reopened?.close()
            let check = try await WriteAheadLog.open(at: "/sim", options: opts, storage: storage)
            let records = try readAll(check)
            let intact = records == (0..<100).map(sampleRecord)
            #expect(intact, "flip seed \(seed): \(records.count) of 100 acknowledged records left; recovery: \(reopened?.recoveryEvents ?? [])")
            try await check.close()
        }
    }
}
