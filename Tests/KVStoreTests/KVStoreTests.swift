import DataGenerator
import EventLog
import Foundation
import StorageSimulator
import Testing
@testable import KVStore

/// A closed store in `dir` of one table file of 2,000 keys, with byte 100 of that file
/// flipped: the file's path and its damaged bytes.
func storeWithADamagedTable(_ dir: String, options: KVOptions) throws -> (path: String, bytes: [UInt8]) {
    let store = try KVStore.open(at: dir, options: options)
    for n in 0..<2_000 { try store.put(key(n), Array(repeating: UInt8(n & 0x7F), count: 20)) }
    try store.freeze(metadata: [])
    try store.close()
    let table = try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".sst") }!
    let path = dir + "/" + table
    var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
    bytes[100] ^= 0x10
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return (path, bytes)
}

/// Options small enough that a few thousand writes flush, compact and fill several levels.
func tinyOptions() -> KVOptions {
    var o = KVOptions()
    o.memtableBytes = 64 << 10
    o.blockBytes = 256
    o.restartInterval = 4
    o.targetFileBytes = 64 << 10
    o.level1Bytes = 1 << 20
    o.levelMultiplier = 4
    o.level0CompactionTrigger = 3
    o.level0StopTrigger = 8
    o.blockCacheBytes = 256 << 10
    return o
}

/// `tinyOptions` with size-tiered compaction.
func tinyTieredOptions() -> KVOptions {
    var o = tinyOptions()
    o.compactionStyle = .tiered
    o.level0StopTrigger = 16
    return o
}

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "kv-\(name)-\(UInt64.random(in: 0...UInt64.max))"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

/// A sorted reference model of the store's contents.
struct Model {
    var entries: [[UInt8]: [UInt8]] = [:]

    func sortedKeys() -> [[UInt8]] { entries.keys.sorted { $0.lexicographicallyPrecedes($1) } }
}

/// Every key of the snapshot, forward, with values.
func scan(_ snapshot: KVSnapshot, lower: [UInt8]? = nil, upper: [UInt8]? = nil) throws -> [([UInt8], [UInt8])] {
    let it = snapshot.makeIterator(lower: lower, upper: upper)
    var out: [([UInt8], [UInt8])] = []
    try it.seekToFirst()
    while it.isValid {
        out.append((Array(it.key), Array(it.value)))
        try it.next()
    }
    return out
}

func scanBackward(_ snapshot: KVSnapshot, lower: [UInt8]? = nil, upper: [UInt8]? = nil) throws -> [[UInt8]] {
    let it = snapshot.makeIterator(lower: lower, upper: upper)
    var out: [[UInt8]] = []
    try it.seekToLast()
    while it.isValid {
        out.append(Array(it.key))
        try it.prev()
    }
    return out
}

func key(_ n: Int, prefix: String = "k") -> [UInt8] { Array("\(prefix)\(String(format: "%08d", n))".utf8) }

@Suite struct KVStoreTests {
    @Test func putGetDeleteSurviveReopen() throws {
        let dir = temporaryDirectory("basic")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var store = try KVStore.open(at: dir)
        try store.put(Array("b".utf8), Array("2".utf8))
        try store.put(Array("a".utf8), Array("1".utf8))
        try store.put(Array("c".utf8), Array("3".utf8))
        try store.delete(Array("b".utf8))
        #expect(try store.get(Array("a".utf8)) == Array("1".utf8))
        #expect(try store.get(Array("b".utf8)) == nil)
        try store.freeze(metadata: [7])
        try store.flush()
        #expect(store.committedMetadata == [7])
        try store.close()
        store = try KVStore.open(at: dir)
        #expect(store.metadata == [7])
        #expect(try store.get(Array("a".utf8)) == Array("1".utf8))
        #expect(try store.get(Array("b".utf8)) == nil)
        #expect(try scan(store.snapshot()).map(\.0) == [Array("a".utf8), Array("c".utf8)])
        try store.close()
        let reader = try KVStore.open(at: dir, mode: .readOnly)
        #expect(try reader.snapshot().get(Array("c".utf8)) == Array("3".utf8))
        try reader.close()
    }

    @Test func readOnlyOpenOfNothingSaysSo() throws {
        let dir = temporaryDirectory("missing")
        #expect(throws: KVError.missing(path: dir)) { try KVStore.open(at: dir, mode: .readOnly) }
    }

    @Test func secondWriterIsRefused() throws {
        let dir = temporaryDirectory("lock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try KVStore.open(at: dir)
        #expect(throws: KVError.self) { try KVStore.open(at: dir) }
        try store.close()
    }

    /// Random writes with many flushes and compactions, checked against a model after
    /// every freeze (gets, full scans both ways, bounded scans) and across reopens.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func matchesAModel(seed: UInt64) throws {
        let shape = try checkAgainstAModel(seed: seed, options: tinyOptions())
        #expect(shape.files.dropFirst().contains { $0 > 0 }, "data should reach sorted levels: \(shape)")
    }

    /// The same with size-tiered compaction: everything stays in level 0, in runs that are
    /// merged as they double, and reads see exactly the model.
    @Test(arguments: [4, 5] as [UInt64])
    func aTieredStoreMatchesAModel(seed: UInt64) throws {
        let shape = try checkAgainstAModel(seed: seed, options: tinyTieredOptions())
        #expect(shape.files.dropFirst().allSatisfy { $0 == 0 } && shape.files[0] > 0, "a tiered store keeps every file in level 0: \(shape)")
    }

    /// Runs that shrink from the oldest to the newest never qualify for a tiered merge (each
    /// is larger than the newer ones together); near the stop trigger the newest are merged
    /// anyway, so `freeze` never waits forever, and every key stays readable.
    @Test(.timeLimit(.minutes(2))) func aTieredStoreMergesShrinkingRunsBeforeItsStopTrigger() throws {
        let dir = temporaryDirectory("tiered-shrinking")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = tinyTieredOptions()
        options.memtableBytes = 1 << 20  // one run per freeze
        var store = try KVStore.open(at: dir, options: options)
        var next = 0
        for round in 0..<30 {
            for _ in 0..<(3_000 - round * 90) {
                try store.put(key(next), Array("v\(next)".utf8))
                next += 1
            }
            try store.freeze(metadata: [UInt8(round)])
            try store.flush()
        }
        try store.settle()
        #expect(store.shape.stats.compactions > 0, "the fallback merged: \(store.shape)")
        try store.close()
        store = try KVStore.open(at: dir, options: options)
        let snapshot = store.snapshot()
        for n in stride(from: 0, to: next, by: 97) { #expect(try snapshot.get(key(n)) == Array("v\(n)".utf8)) }
        #expect(try scan(snapshot).count == next)
        try store.close()
    }

    /// Random puts and deletes, flushed and compacted, checked against a model after every
    /// freeze and across reopens; the store's final shape.
    private func checkAgainstAModel(seed: UInt64, options: KVOptions) throws -> (files: [Int], bytes: [Int64], stats: KVStore.Statistics) {
        let dir = temporaryDirectory("model-\(seed)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var random = SplitMix64(seed: seed)
        var model = Model()
        var store = try KVStore.open(at: dir, options: options)
        for round in 0..<40 {
            for _ in 0..<Int.random(in: 50...600, using: &random) {
                let k = key(Int.random(in: 0..<3_000, using: &random))
                if Int.random(in: 0..<5, using: &random) == 0 {
                    try store.delete(k)
                    model.entries[k] = nil
                } else {
                    let value = (0..<Int.random(in: 0..<80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                    try store.put(k, value)
                    model.entries[k] = value
                }
            }
            // The writer sees its own unfrozen writes, by key and (sealed) in order.
            for _ in 0..<20 {
                let k = key(Int.random(in: 0..<3_000, using: &random))
                #expect(try store.get(k) == model.entries[k])
            }
            if round % 3 == 1 {
                #expect(try scan(store.writerSnapshot()).map(\.0) == model.sortedKeys())
                let k = key(Int.random(in: 0..<3_000, using: &random))
                try store.put(k, [9])
                model.entries[k] = [9]
            }
            try store.freeze(metadata: Array("round \(round)".utf8))
            if round % 7 == 6 {
                try store.flush()
                try store.close()
                store = try KVStore.open(at: dir, options: options)
                #expect(store.metadata == Array("round \(round)".utf8))
            }
            let snapshot = store.snapshot()
            // Point lookups through the files (every level-0 run and level), present and absent keys.
            for i in stride(from: round % 7, to: 3_000, by: 7) { #expect(try snapshot.get(key(i)) == model.entries[key(i)]) }
            let keys = model.sortedKeys()
            let all = try scan(snapshot)
            #expect(all.map(\.0) == keys)
            #expect(all.allSatisfy { model.entries[$0.0] == $0.1 })
            #expect(try scanBackward(snapshot) == keys.reversed())
            let low = key(Int.random(in: 0..<3_000, using: &random)), high = key(Int.random(in: 0..<3_000, using: &random))
            let (lower, upper) = low.lexicographicallyPrecedes(high) ? (low, high) : (high, low)
            let inRange = keys.filter { !$0.lexicographicallyPrecedes(lower) && $0.lexicographicallyPrecedes(upper) }
            #expect(try scan(snapshot, lower: lower, upper: upper).map(\.0) == inRange)
            #expect(try scanBackward(snapshot, lower: lower, upper: upper) == inRange.reversed())
            // Seeks land on the first key ≥ the target, and seekBefore on the last key < it.
            let it = snapshot.makeIterator()
            let target = key(Int.random(in: 0..<3_000, using: &random))
            try it.seek(target)
            #expect((it.isValid ? Array(it.key) : nil) == keys.first { !$0.lexicographicallyPrecedes(target) })
            try it.seekBefore(target)
            #expect((it.isValid ? Array(it.key) : nil) == keys.last { $0.lexicographicallyPrecedes(target) })
        }
        try store.flush()
        let shape = store.shape
        #expect(shape.stats.compactions > 0, "the test should exercise compactions: \(shape)")
        try store.close()
        return shape
    }

    /// Keys that arrive in order (times, sequences) with updates only to recent keys: old
    /// files are kept as they are instead of being rewritten by every compaction, and the
    /// contents stay exact.
    @Test func orderedKeysLeaveOldFilesAlone() throws {
        let dir = temporaryDirectory("ordered")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = tinyOptions()
        options.partitionPrefixLength = { _ in 1 } // "a…" and "z…" keys are two partitions
        let store = try KVStore.open(at: dir, options: options)
        var model = Model()
        var random = SplitMix64(seed: 4)
        var next = 0
        for round in 0..<150 {
            for _ in 0..<200 {
                // Two families of ordered keys: a level-0 file spans from the newest "a"
                // keys to the newest "z" keys, over every older "z" file, which no key reaches.
                for family in ["a", "z"] {
                    let value = (0..<40).map { _ in UInt8.random(in: 0...255, using: &random) }
                    try store.put(key(next, prefix: family), value)
                    model.entries[key(next, prefix: family)] = value
                }
                next += 1
            }
            for _ in 0..<100 {
                let recent = key(max(0, next - Int.random(in: 1...800, using: &random)), prefix: Bool.random(using: &random) ? "a" : "z")
                try store.put(recent, [UInt8(round)])
                model.entries[recent] = [UInt8(round)]
            }
            try store.freeze(metadata: [])
        }
        try store.settle()
        let found = try scan(store.snapshot())
        #expect(found.map(\.0) == model.sortedKeys())
        #expect(found.allSatisfy { model.entries[$0.0] == $0.1 })
        let (files, bytes, stats) = store.shape
        #expect(stats.filesKept > 0, "old files should be kept: \(files) \(stats)")
        // Without keeping, every level-0 compaction would rewrite all of level 1.
        #expect(stats.bytesCompactedIn < 6 * bytes.reduce(0, +), "compactions rewrote too much: \(stats), level bytes \(bytes)")
        try store.close()
    }

    /// A batched lookup answers each key as a lookup of its own does — keys in the mutable
    /// memtable (set pending or indexed), in frozen ones, in level-0 runs and sorted
    /// levels, deleted keys, keys never written, repeated keys, more keys than one batch
    /// step — with every file's filter read or not yet read, on leveled and tiered stores.
    @Test(arguments: [false, true])
    func batchedLookupsAnswerAsSingleOnes(tiered: Bool) throws {
        let dir = temporaryDirectory("batched")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try KVStore.open(at: dir, options: tiered ? tinyTieredOptions() : tinyOptions())
        var random = SplitMix64(seed: tiered ? 12 : 11)
        let keyLength = 9
        func key(_ n: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(n).bigEndian) { [UInt8(ascii: "k")] + Array($0) } }
        for round in 0..<40 {
            for _ in 0..<300 {
                let n = Int.random(in: 0..<20_000, using: &random)
                if Int.random(in: 0..<6, using: &random) == 0 { try store.delete(key(n)) } else { try store.put(key(n), [UInt8(round), UInt8(n & 0xFF)]) }
            }
            if round % 3 != 2 { try store.freeze(metadata: []) }
            guard round % 8 == 7 else { continue }
            // Half the time some filters have been read by single lookups first.
            if Bool.random(using: &random) { for _ in 0..<50 { _ = try store.get(key(Int.random(in: 0..<20_000, using: &random))) } }
            let asked = (0..<(KVStore.batchLookupKeys * 2 + 17)).map { _ in key(Int.random(in: 0..<22_000, using: &random)) }
            var answers = [[UInt8]??](repeating: nil, count: asked.count)
            try asked.flatMap { $0 }.withUnsafeBytes { packed in
                try store.withValues(packedKeys: packed, keyLength: keyLength) { i, value in
                    #expect(answers[i] == nil, "key \(i) answered twice")
                    answers[i] = .some(value.map { Array($0) })
                }
            }
            for (i, k) in asked.enumerated() {
                #expect(answers[i] == .some(try store.get(k)), "round \(round), key \(k)")
            }
        }
        try store.close()
    }

    /// A key filter (the ingestor's record of what it wrote to its scratch store) never
    /// loses a key, and at 10 bits per key lets through about 1 % of keys never inserted;
    /// over its size it still loses none.
    @Test func aKeyFilterHasNoFalseNegativesAndFewFalsePositives() {
        var filter = KeyFilter(bytes: 10_000 * 10 / 8)
        func key(_ n: Int) -> [UInt8] { Array("i-\(n)".utf8) }
        for n in 0..<10_000 { key(n).withUnsafeBytes { filter.insert($0) } }
        #expect((0..<10_000).allSatisfy { n in key(n).withUnsafeBytes { filter.mayContain($0) } })
        let falsePositives = (10_000..<110_000).filter { n in key(n).withUnsafeBytes { filter.mayContain($0) } }.count
        #expect(falsePositives < 2_500, "\(falsePositives) of 100,000 keys never written pass")
        var tiny = KeyFilter(bytes: 64)
        for n in 0..<5_000 { key(n).withUnsafeBytes { tiny.insert($0) } }
        #expect((0..<5_000).allSatisfy { n in key(n).withUnsafeBytes { tiny.mayContain($0) } })
    }

    /// The filter never hides a key it holds, and with 10 bits per key lets through about
    /// 1 % of keys it does not hold (both layouts are read).
    @Test func bloomFilterHasNoFalseNegativesAndFewFalsePositives() {
        var random = SplitMix64(seed: 99)
        let members = (0..<20_000).map { _ in random.next() }
        let filter = BloomFilter.build(hashes: members, bitsPerKey: 10)
        filter.withUnsafeBytes { bits in
            #expect(members.allSatisfy { BloomFilter.mayContain(bits, hash: $0) })
            let others = (0..<200_000).filter { _ in BloomFilter.mayContain(bits, hash: random.next()) }.count
            #expect(others < 200_000 * 2 / 100, "false positives: \(others) of 200,000")
        }
    }

    /// Closing with enough level-0 runs to compact, level 1 still empty: the close skips the
    /// level-0 → level-1 compaction (it would be abandoned and picked again, forever: a
    /// full-disk test once spun in it for ten minutes) and a later writer does it.
    @Test func closeWithLevelZeroDebtReturnsAndTheNextWriterPaysIt() throws {
        let dir = temporaryDirectory("close-debt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = tinyOptions()
        options.memtableBytes = 4 << 20   // freezes alone decide the runs
        options.maxFrozenMemtables = 8    // queued, so the worker meets them while closing
        options.level1Bytes = 64 << 20    // small level 0 next to level 1's budget
        options.level0StopTrigger = 32
        let store = try KVStore.open(at: dir, options: options)
        var model = Model()
        for run in 0..<options.level0CompactionTrigger + 1 {
            for n in 0..<6_000 {
                try store.put(key(n * 7 + run), [UInt8(run)])
                model.entries[key(n * 7 + run)] = [UInt8(run)]
            }
            try store.freeze(metadata: [UInt8(run)])
        }
        let closed = DispatchSemaphore(value: 0)
        let closer = Thread { try? store.close(); closed.signal() }
        closer.start()
        #expect(closed.wait(timeout: .now() + 60) == .success, "close() did not return within 60 s")

        let next = try KVStore.open(at: dir, options: options)
        try next.settle()
        #expect(next.shape.files[0] <= 1, "the next writer compacts level 0: \(next.shape.files)")
        let found = try scan(next.snapshot())
        #expect(found.map(\.0) == model.sortedKeys())
        #expect(found.allSatisfy { model.entries[$0.0] == $0.1 })
        try next.close()
    }

    /// A compaction reads its inputs forward through a window (`RunScanner`): runs of
    /// files larger than the window, blocks that straddle its end and a value larger than
    /// the whole window come out exact, lz4 and raw.
    @Test(arguments: [Codec.lz4, Codec.none])
    func compactionsReadInputsLargerThanTheirWindow(codec: Codec) throws {
        let dir = temporaryDirectory("window-\(codec)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = KVOptions()
        options.codec = codec
        options.memtableBytes = 2 << 20
        options.targetFileBytes = 1 << 20
        options.level1Bytes = 2 << 20
        options.level0CompactionTrigger = 2
        let store = try KVStore.open(at: dir, options: options)
        var model = Model()
        var random = SplitMix64(seed: 23)
        for round in 0..<6 {
            for _ in 0..<12_000 {
                let k = key(Int.random(in: 0..<40_000, using: &random))
                let value = (0..<Int.random(in: 0..<200, using: &random)).map { _ in UInt8.random(in: 0...3, using: &random) }
                try store.put(k, value)
                model.entries[k] = value
            }
            if round == 2 {
                // Random 64-byte pieces, each twice: lz4 halves it and no more, so its block
                // is larger than the window in both codecs. Under a key no other put reaches,
                // so the end compares it.
                var huge: [UInt8] = []
                while huge.count < 3 * RunScanner.windowBytes {
                    let piece = (0..<64).map { _ in UInt8.random(in: 0...255, using: &random) }
                    huge += piece + piece
                }
                try store.put(key(20_000, prefix: "h"), huge)
                model.entries[key(20_000, prefix: "h")] = huge
            }
            try store.freeze(metadata: [UInt8(round)])
        }
        try store.settle()
        let shape = store.shape
        #expect(shape.stats.compactions >= 2 && shape.stats.bytesCompactedIn > Int64(4 * RunScanner.windowBytes), "\(shape)")
        let found = try scan(store.snapshot())
        #expect(found.map(\.0) == model.sortedKeys())
        #expect(found.allSatisfy { model.entries[$0.0] == $0.1 })
        try store.close()
    }

    /// A damaged block in a compaction's input stops the compaction, and the store says
    /// which file and where; the damaged file is left as it was (not merged away).
    @Test func damageInACompactionsInputIsReportedWithItsPlace() throws {
        let dir = temporaryDirectory("compaction-damage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = tinyOptions()
        options.memtableBytes = 4 << 20
        options.level0StopTrigger = 32
        let (path, bytes) = try storeWithADamagedTable(dir, options: options)

        let reopened = try KVStore.open(at: dir, options: options)
        #expect {
            for run in 1...options.level0CompactionTrigger {
                for n in 0..<2_000 { try reopened.put(key(n * 3 + run), [UInt8(run)]) }
                try reopened.freeze(metadata: [UInt8(run)])
            }
            try reopened.settle()
        } throws: { error in
            guard case let .workerFailed(reason) = error as? KVError,
                  let at = reason.range(of: path + " at byte offset ") else { return false }
            let offset = Int(reason[at.upperBound...].prefix { $0.isNumber }) ?? .max
            return offset <= 100 && reason.contains("checksum")
        }
        try? reopened.close()
        #expect(FileManager.default.contents(atPath: path) == Data(bytes))
    }

    /// A direction change in the middle of a scan lands on the neighbouring key, also when
    /// the key's newest version lives in another level than its neighbours.
    @Test func directionChangesAcrossLevels() throws {
        let dir = temporaryDirectory("direction")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try KVStore.open(at: dir, options: tinyOptions())
        var model = Model()
        for n in stride(from: 0, to: 2_000, by: 1) {
            try store.put(key(n), [UInt8(n & 0xFF)])
            model.entries[key(n)] = [UInt8(n & 0xFF)]
        }
        try store.freeze(metadata: [])
        try store.flush()
        for n in stride(from: 0, to: 2_000, by: 3) {
            try store.delete(key(n))
            model.entries[key(n)] = nil
        }
        try store.freeze(metadata: [])
        let keys = model.sortedKeys()
        let it = store.snapshot().makeIterator()
        try it.seek(key(1_000))
        var index = keys.firstIndex { !$0.lexicographicallyPrecedes(key(1_000)) }!
        var random = SplitMix64(seed: 9)
        for _ in 0..<500 {
            if Bool.random(using: &random), index + 1 < keys.count {
                try it.next()
                index += 1
            } else if index > 0 {
                try it.prev()
                index -= 1
            }
            #expect(it.isValid && Array(it.key) == keys[index])
        }
        try store.close()
    }

    /// A snapshot keeps reading the files it started with, even after compactions replaced
    /// and removed them from the current version.
    /// A store of many tables holds at most `maxOpenTables` open, whatever is read and in
    /// what order (the least recently read closes), and answers the same; descriptors are
    /// counted in /proc/self/fd among those naming its directory.
    @Test func openTablesAreBoundedByTheirLimit() throws {
        let dir = temporaryDirectory("open-tables")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func held() -> Int {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "").hasSuffix(".sst") && ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "").hasPrefix(dir) }.count
        }
        var options = tinyOptions()
        options.maxOpenTables = 3
        let store = try KVStore.open(at: dir, options: options)
        var model = Model()
        var random = SplitMix64(seed: 11)
        for n in 0..<40_000 {
            let value = Array("value \(n) \(Int.random(in: 0..<1_000_000, using: &random)) of a store of many tables".utf8)
            try store.put(key(n), value)
            model.entries[key(n)] = value
            if n % 4_000 == 3_999 { try store.freeze(metadata: [UInt8(n / 4_000)]) }
        }
        try store.settle()
        let tables = store.snapshot().version.fileCount
        #expect(tables > 10, "\(tables) tables")
        var most = 0
        for _ in 0..<3_000 {
            let n = Int.random(in: 0..<40_000, using: &random)
            #expect(try store.get(key(n)) == model.entries[key(n)])
            most = max(most, held())
        }
        // Scans open every table in turn.
        #expect(try scan(store.snapshot()).map(\.0) == model.sortedKeys())
        most = max(most, held())
        // At most the limit, plus a table a reader still held when it was let go.
        #expect(most <= 3 + 1, "\(most) table files open at once")
        #expect(store.openTableCount <= 3)
        try store.close()
        var zero = KVOptions()
        zero.maxOpenTables = 0
        #expect(throws: KVError.self) { try KVStore.open(at: dir, options: zero) }
    }

    @Test func snapshotsOutliveCompactions() throws {
        let dir = temporaryDirectory("snapshot")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try KVStore.open(at: dir, options: tinyOptions())
        for n in 0..<3_000 { try store.put(key(n), Array("old".utf8)) }
        try store.freeze(metadata: [1])
        try store.flush()
        let old = store.snapshot()
        for round in 0..<10 {
            for n in 0..<3_000 where n % 10 == round { try store.put(key(n), Array("new".utf8)) }
            try store.freeze(metadata: [UInt8(2 + round)])
            try store.flush()
        }
        #expect(old.metadata == [1])
        #expect(try scan(old).allSatisfy { $0.1 == Array("old".utf8) })
        #expect(try scan(store.snapshot()).allSatisfy { $0.1 == Array("new".utf8) })
        try store.close()
    }

    /// A read-only open sees what the writer committed, and can lay writes of its own over
    /// it in memory without touching the files.
    @Test func readOnlyOverlay() throws {
        let dir = temporaryDirectory("overlay")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try KVStore.open(at: dir, options: tinyOptions())
        for n in 0..<500 { try writer.put(key(n), [1]) }
        try writer.freeze(metadata: [1])
        try writer.flush()
        let reader = try KVStore.open(at: dir, mode: .readOnly, options: tinyOptions())
        try reader.put(key(5), [2])
        try reader.delete(key(6))
        try reader.freeze(metadata: [2])
        let snapshot = reader.snapshot()
        #expect(snapshot.metadata == [2])
        #expect(try snapshot.get(key(5)) == [2])
        #expect(try snapshot.get(key(6)) == nil)
        #expect(try scan(snapshot).count == 499)
        #expect(try writer.snapshot().get(key(6)) == [1])
        try reader.close()
        try writer.close()
    }

    /// Damage in a table file is reported with the file and offset, never read as data.
    @Test func damageIsReportedWithItsPlace() throws {
        let dir = temporaryDirectory("damage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = tinyOptions()
        options.memtableBytes = 4 << 20
        let (path, _) = try storeWithADamagedTable(dir, options: options)
        let reopened = try KVStore.open(at: dir, options: options)
        #expect {
            _ = try scan(reopened.snapshot())
        } throws: { error in
            guard case let .corrupt(where_, offset, reason) = error as? KVError else { return false }
            return where_ == path && offset <= 100 && reason.contains("checksum")
        }
        try reopened.close()
    }
}

/// Power cuts at random moments: after a restart the store holds exactly what it held at
/// the freeze whose metadata it reports — never a mix, never damage (leveled and tiered).
@Suite struct KVStoreCrashTests {
    @Test(arguments: Array(UInt64(1)...UInt64(ProcessInfo.processInfo.environment["BACKORDER_KV_CRASH_SEEDS"].flatMap { UInt64($0) } ?? 12)))
    func powerCutsKeepACommittedState(seed: UInt64) throws {
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15)
        var live = Model()
        var committed: [[UInt8]: Model] = [[]: Model()]
        let dir = "/kv"
        var verified = 0
        for cut in 0..<4 {
            storage.crash(afterOperations: Int.random(in: 20...400, using: &random), seed: seed &+ UInt64(cut))
            let store: KVStore
            // Odd seeds leveled, even seeds tiered.
            do { store = try KVStore.open(at: dir, options: seed % 2 == 1 ? tinyOptions() : tinyTieredOptions(), storage: storage) } catch { continue }
            // What survived must be exactly one committed state.
            let metadata = store.metadata
            guard let expected = committed[metadata] else {
                Issue.record("seed \(seed): metadata \(metadata) was never committed")
                return
            }
            do {
                let found = try scan(store.snapshot())
                #expect(found.map(\.0) == expected.sortedKeys(), "seed \(seed), cut \(cut)")
                #expect(found.allSatisfy { expected.entries[$0.0] == $0.1 }, "seed \(seed), cut \(cut)")
                if !found.isEmpty { verified += 1 }
            } catch {
                // The power may go off during the check itself.
                if storage.generation == 0 { Issue.record("seed \(seed): \(error)") }
            }
            live = expected
            var round = 0
            do {
                while true {
                    for _ in 0..<Int.random(in: 20...200, using: &random) {
                        let k = key(Int.random(in: 0..<1_500, using: &random))
                        if Int.random(in: 0..<4, using: &random) == 0 {
                            try store.delete(k)
                            live.entries[k] = nil
                        } else {
                            let value = (0..<Int.random(in: 1..<60, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                            try store.put(k, value)
                            live.entries[k] = value
                        }
                    }
                    let tag = Array("s\(seed)c\(cut)r\(round)".utf8)
                    committed[tag] = live
                    try store.freeze(metadata: tag)
                    round += 1
                }
            } catch {
                // The simulated power cut stopped the writer; the worker has failed too.
            }
            try? store.close()
        }
        #expect(verified > 0, "seed \(seed): no restart found data to check")
    }
}

@Suite struct RunBoundsTests {
    /// The flat bounds a point lookup searches find the file whose range holds a key —
    /// at its ends, inside it, between files (none), before the first and after the last
    /// (none) — as a search of the ranges one by one does.
    @Test func findTheFileWhoseRangeHoldsAKey() {
        let ranges: [(smallest: [UInt8], largest: [UInt8])] = [
            ([2], [4]), ([4, 1], [7]), ([9], [9]), ([10, 0], [12, 255, 255]), ([13], [200, 0]),
        ]
        let bounds = RunBounds(ranges)
        func linear(_ key: [UInt8]) -> Int? {
            ranges.firstIndex { !key.lexicographicallyPrecedes($0.smallest) && !$0.largest.lexicographicallyPrecedes(key) }
        }
        var keys: [[UInt8]] = [[], [0], [255, 255]]
        for a in UInt8(0)...201 { keys.append([a]); keys.append([a, 0]); keys.append([a, 1]); keys.append([a, 255, 255]) }
        for key in keys {
            #expect(key.withUnsafeBytes { bounds.file(containing: $0) } == linear(key), "key \(key)")
        }
        #expect([UInt8(3)].withUnsafeBytes { RunBounds([]).file(containing: $0) } == nil)
    }
}

@Suite struct KeyOrderTests {
    /// The shared prefix, found 8 bytes at a time, and the order check made from it agree
    /// with a byte-by-byte walk and `compare`: keys of every length up to 40 bytes from a
    /// small alphabet (long equal runs, differences in every byte of a word, prefixes).
    @Test func sharedPrefixAndFollowsMatchAByteWalk() {
        var random = SplitMix64(seed: 17)
        func key() -> [UInt8] {
            (0..<Int.random(in: 0...40, using: &random)).map { _ in [0, 1, 0x7F, 0x80, 0xFF][Int.random(in: 0..<5, using: &random)] }
        }
        for _ in 0..<20_000 {
            let a = key()
            var b = Bool.random(using: &random) ? a : key()
            if !b.isEmpty && Bool.random(using: &random) { b[Int.random(in: 0..<b.count, using: &random)] ^= 0x80 }
            var naive = 0
            while naive < min(a.count, b.count) && a[naive] == b[naive] { naive += 1 }
            a.withUnsafeBytes { ka in
                b.withUnsafeBytes { kb in
                    let shared = KeyOrder.sharedPrefix(ka, kb)
                    #expect(shared == naive)
                    #expect(KeyOrder.follows(kb, ka, sharing: shared) == (KeyOrder.compare(kb, ka) > 0))
                    let byteOrder = a == b ? 0 : (a.lexicographicallyPrecedes(b) ? -1 : 1)
                    #expect(KeyOrder.compare(ka, kb).signum() == byteOrder)
                }
            }
        }
    }
}

/// `RunScanner`, the compactions' reader, on table files written by `TableBuilder`.
@Suite struct RunScannerTests {
    private func writeTable(_ dir: String, number: UInt64, keys: Range<Int>, options: KVOptions) throws -> TableInfo {
        let builder = try TableBuilder(storage: PosixStorage(), path: dir + "/" + TableHandle.fileName(number), number: number, options: options)
        for n in keys {
            let value = Array(repeating: UInt8(n & 0xFF), count: n % 300)
            try key(n).withUnsafeBytes { k in try value.withUnsafeBytes { try builder.add(k, $0, deleted: n % 7 == 0) } }
        }
        return try builder.finish()
    }

    private func handle(_ info: TableInfo, _ dir: String) -> TableHandle {
        TableHandle(info: info, directory: dir, storage: PosixStorage(), cache: BlockCache(capacityBytes: 1 << 20), owner: OwnerState(maxOpenTables: 8))
    }

    /// Every entry of a run of two files, in order, with its value and deletion flag —
    /// files larger than the window, so that blocks straddle the window's end.
    @Test func scansARunWholeAndInOrder() throws {
        let dir = temporaryDirectory("run-scanner")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var options = KVOptions()
        options.codec = .none
        let first = try writeTable(dir, number: 1, keys: 0..<4_000, options: options)
        let second = try writeTable(dir, number: 2, keys: 4_000..<6_000, options: options)
        #expect(first.size > Int64(RunScanner.windowBytes), "the first file should be larger than the window: \(first.size) bytes")
        let scanner = RunScanner(files: [handle(first, dir), handle(second, dir)])
        try scanner.seekToFirst()
        var n = 0
        while scanner.isValid {
            #expect(Array(scanner.key) == key(n))
            #expect(Array(scanner.value) == Array(repeating: UInt8(n & 0xFF), count: n % 300))
            #expect(scanner.isDeletion == (n % 7 == 0))
            try scanner.next()
            n += 1
        }
        #expect(n == 6_000)
    }

    /// A file holding fewer entries than its manifest entry says is damage, named with the file.
    @Test func aFileShortOfItsEntriesIsDamage() throws {
        let dir = temporaryDirectory("run-scanner-short")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var info = try writeTable(dir, number: 1, keys: 0..<500, options: KVOptions())
        info.entries += 1
        let scanner = RunScanner(files: [handle(info, dir)])
        #expect {
            try scanner.seekToFirst()
            while scanner.isValid { try scanner.next() }
        } throws: { error in
            guard case let .corrupt(path, _, reason) = error as? KVError else { return false }
            return path.hasSuffix("000001.sst") && reason.contains("500 entries") && reason.contains("501")
        }
    }
}
