import DataGenerator
import Testing
@testable import EventStore

/// The append path's hash table agrees with `Dictionary` under random inserts, updates and
/// removals — including keys that crowd into one probe run, where backward-shift deletion
/// must keep every later entry reachable.
@Suite struct WordPairTableTests {
    /// Keys drawn from a small pool, so that updates and removals hit present keys; with
    /// `sequential`, the pool's ids differ only in their low word, as a client's counter would.
    @Test(arguments: [false, true])
    func agreesWithADictionary(sequential: Bool) {
        var random = SplitMix64(seed: sequential ? 7 : 11)  // seeded: a failure repeats
        let pool = (0..<512).map { i in sequential ? ScopedID(high: 42, low: UInt64(i)) : ScopedID(high: random.next(), low: random.next()) }
        var table = WordPairTable<ScopedID, Int>()
        var model: [ScopedID: Int] = [:]
        for step in 0..<50_000 {
            let key = pool[Int(random.next() % UInt64(pool.count))]
            if random.next() % 3 == 0 {
                table[key] = nil
                model[key] = nil
            } else {
                table[key] = step
                model[key] = step
            }
            if step % 1_000 == 0 {
                #expect(table.count == model.count)
                for key in pool { #expect(table[key] == model[key]) }
            }
        }
        #expect(table.count == model.count)
        #expect(table.values.sorted() == model.values.sorted())
        for key in pool { #expect(table[key] == model[key]) }
        table.removeAll()
        #expect(table.isEmpty)
        #expect(pool.allSatisfy { table[$0] == nil })
    }

    /// A table grows past its first capacity and keeps every entry.
    @Test func growsAndKeepsEverything() {
        var table = WordPairTable<StreamHash, Int64>(capacity: 2)
        let keys = (0..<10_000).map { StreamHash(key: Array("tenant\u{0}record/R-\($0)".utf8)) }
        for (i, key) in keys.enumerated() { table[key] = Int64(i) }
        #expect(table.count == keys.count)
        #expect(keys.enumerated().allSatisfy { table[$1] == Int64($0) })
    }
}
