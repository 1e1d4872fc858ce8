import DataGenerator
import Testing
@testable import KVStore

@Suite struct MemtableTests {
    /// Keys with shared prefixes of every length, zero bytes, keys that end inside an
    /// 8-byte chunk and keys that are prefixes of others: `freeze` orders them as bytes
    /// compare, in groups sorted by comparison and in groups large enough for the radix sort.
    @Test(arguments: [100, 5_000, 60_000])
    func freezeSortsKeysAsBytesCompare(count: Int) {
        var random = SplitMix64(seed: UInt64(count))
        let prefixes: [[UInt8]] = [[], Array("tenant-a\u{0}".utf8), Array("tenant-b\u{0}T".utf8), [0, 0, 0, 0, 0, 0, 0, 0, 0], [0xFF, 0xFF]]
        var keys = Set<[UInt8]>()
        while keys.count < count {
            var key = prefixes[Int.random(in: 0..<prefixes.count, using: &random)]
            let length = Int.random(in: 0...24, using: &random)
            // A small alphabet makes long equal runs, as a view's keys have.
            for _ in 0..<length { key.append([0, 1, 0x61, 0x62, 0xFF][Int.random(in: 0..<5, using: &random)]) }
            keys.insert(key)
        }
        let table = Memtable(expectedEntries: 16)
        for key in keys {
            key.withUnsafeBytes { k in [UInt8(1)].withUnsafeBytes { table.put(k, $0) } }
        }
        table.freeze()
        let frozen = table.sorted.map { Array(table.key($0)) }
        #expect(frozen == keys.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// `freeze` leaves the sort to the first walk in order, on whatever thread walks first:
    /// walks that start together on several threads all get the one sorted order, and the
    /// memory it takes was counted by the freeze.
    @Test func theFirstWalkSortsAndConcurrentWalksShareTheOrder() async {
        let table = Memtable(expectedEntries: 16)
        var keys: [[UInt8]] = []
        for i in 0..<20_000 {
            let key = Array("k\((i &* 7919) % 20_000)".utf8)
            keys.append(key)
            key.withUnsafeBytes { k in [UInt8(1)].withUnsafeBytes { table.put(k, $0) } }
        }
        table.freeze()
        // The order's memory is counted at the freeze, whoever sorts later.
        let counted = table.memoryBytes
        let expected = keys.sorted { $0.lexicographicallyPrecedes($1) }
        let orders = await withTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let walk = MemtableIterator(table)
                    var seen: [[UInt8]] = []
                    walk.seekToFirst()
                    while walk.isValid {
                        seen.append(Array(walk.key))
                        walk.next()
                    }
                    return seen
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(orders.count == 4)
        for order in orders { #expect(order == expected) }
        #expect(table.memoryBytes == counted)
    }

    /// The radix sort on chunks orders them as a comparison sort does and keeps every pair,
    /// for chunks that share some of their bytes and not others.
    @Test func radixSortOfChunksMatchesAComparisonSort() {
        var random = SplitMix64(seed: 7)
        let n = Memtable.radixSortThreshold * 400
        var pairs = (0..<n).map { i in
            let shared: UInt64 = 0x6465_6661_0000_0000
            return Memtable.SortPair(chunk: shared | UInt64.random(in: 0...0xFF_FFFF, using: &random) << 4, ref: UInt64(i))
        }
        let expected = pairs.sorted { ($0.chunk, $0.ref) < ($1.chunk, $1.ref) }
        pairs.withUnsafeMutableBufferPointer { Memtable.sortByChunk($0) }
        #expect(pairs.map(\.chunk) == expected.map(\.chunk))
        #expect(pairs.sorted { ($0.chunk, $0.ref) < ($1.chunk, $1.ref) }.map(\.ref) == expected.map(\.ref))
    }

    /// Entries whose index slots are set a batch at a time read as if set one by one: a
    /// lookup between writes sees every earlier write (the batch's too), a key written
    /// several times in one batch holds its last value (a deletion included), the index
    /// grows under a batch, and `freeze` keeps what a batch had not indexed yet.
    @Test func writesIndexedInBatchesReadAsWrittenOneByOne() {
        var random = SplitMix64(seed: 3)
        let table = Memtable(expectedEntries: 16)
        var model: [[UInt8]: [UInt8]?] = [:]
        for step in 0..<(Memtable.pendingLimit * 300 + 7) {
            let key = Array("k\(Int.random(in: 0..<2_000, using: &random))".utf8)
            if Int.random(in: 0..<5, using: &random) == 0 {
                key.withUnsafeBytes { table.delete($0) }
                model[key] = .some(nil)
            } else {
                let value = Array("v\(step)".utf8)
                key.withUnsafeBytes { k in value.withUnsafeBytes { table.put(k, $0) } }
                model[key] = .some(value)
            }
            if step % 37 == 0 {
                let probe = Array("k\(Int.random(in: 0..<2_000, using: &random))".utf8)
                let found = probe.withUnsafeBytes { table.lookup($0) }.map { table.isDeletion($0) ? nil : Array(table.value($0)) }
                #expect(found == model[probe], "key \(String(decoding: probe, as: UTF8.self)) at step \(step)")
            }
        }
        #expect(!table.isEmpty)
        table.freeze()
        #expect(table.sorted.count == model.count)
        for ref in table.sorted {
            let key = Array(table.key(ref))
            #expect((table.isDeletion(ref) ? nil : Array(table.value(ref))) == model[key] ?? [], "key \(String(decoding: key, as: UTF8.self))")
        }
        let fresh = Memtable()
        [UInt8(1)].withUnsafeBytes { fresh.put($0, $0) }
        #expect(!fresh.isEmpty, "a memtable with one write not yet indexed is not empty")
    }
}
