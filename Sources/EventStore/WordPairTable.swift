/// A key of two 64-bit words that are already well spread — a 128-bit hash
/// (`StreamHash`) or an event id mixed with its tenant's hash (`ScopedID`).
protocol WordPairKey: Equatable {
    var words: (UInt64, UInt64) { get }
}

extension StreamHash: WordPairKey {
    var words: (UInt64, UInt64) { (k0, k1) }
}

extension ScopedID: WordPairKey {
    var words: (UInt64, UInt64) { (high, low) }
}

/// A hash table for the append path's keys: open addressing with linear probing on a
/// cheap mix of the key's two words, and backward-shift deletion (no tombstones).
///
/// `Dictionary` hashes every key with a per-process seeded SipHash; on the append path,
/// where every event probes three to five tables, that was 15 % of the CPU of an
/// in-process append (bench/RESULTS.md, "The append path's tables"). Keys here are
/// hashes or ids already, so a multiply-xorshift of their words spreads them as well. Ids
/// are chosen by clients, so the mix takes both words: ids that differ only in one word
/// (sequential ids, say) still land in different slots.
struct WordPairTable<Key: WordPairKey, Value> {
    // Keys and values apart: a probe reads keys only, and never copies (retains) a value.
    private var keys: [Key?]
    private var slotValues: [Value?]
    private var mask: Int
    /// Entries held.
    private(set) var count = 0

    /// An empty table with room for `capacity` entries before it grows.
    init(capacity: Int = 0) {
        var size = 8
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: nil, count: size)
        slotValues = Array(repeating: nil, count: size)
        mask = size - 1
    }

    var isEmpty: Bool { count == 0 }

    /// The entries' values, in no particular order.
    var values: some Sequence<Value> { slotValues.lazy.compactMap { $0 } }

    @inline(__always)
    private func home(_ key: Key) -> Int {
        let (a, b) = key.words
        var h = a ^ (b &* 0x9E37_79B9_7F4A_7C15)
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        h ^= h >> 29
        return Int(truncatingIfNeeded: h) & mask
    }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always)
    private func find(_ key: Key) -> (slot: Int, found: Bool) {
        var slot = home(key)
        while let held = keys[slot] {
            if held == key { return (slot, true) }
            slot = (slot + 1) & mask
        }
        return (slot, false)
    }

    subscript(key: Key) -> Value? {
        get {
            let (slot, found) = find(key)
            return found ? slotValues[slot] : nil
        }
        set {
            let (slot, found) = find(key)
            if let newValue {
                slotValues[slot] = newValue
                if !found {
                    keys[slot] = key
                    count += 1
                    if count * 2 > keys.count { grow() }
                }
            } else if found {
                remove(at: slot)
            }
        }
    }

    /// Empties the table, keeping its slots.
    mutating func removeAll() {
        guard count > 0 else { return }
        for i in keys.indices where keys[i] != nil {
            keys[i] = nil
            slotValues[i] = nil
        }
        count = 0
    }

    /// Empties `slot` and moves later entries of its probe run back, so that every entry
    /// stays reachable from its home slot without tombstones.
    private mutating func remove(at slot: Int) {
        var hole = slot
        keys[hole] = nil
        slotValues[hole] = nil
        count -= 1
        var next = (hole + 1) & mask
        while let held = keys[next] {
            let wanted = home(held)
            // The entry may move into the hole unless its home lies cyclically in (hole, next].
            let stays = hole <= next ? (wanted > hole && wanted <= next) : (wanted > hole || wanted <= next)
            if !stays {
                keys[hole] = held
                slotValues.swapAt(hole, next)
                keys[next] = nil
                hole = next
            }
            next = (next + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys
        var oldValues = slotValues
        keys = Array(repeating: nil, count: oldKeys.count * 2)
        slotValues = Array(repeating: nil, count: oldKeys.count * 2)
        mask = keys.count - 1
        for (i, held) in oldKeys.enumerated() {
            guard let held else { continue }
            var slot = home(held)
            while keys[slot] != nil { slot = (slot + 1) & mask }
            keys[slot] = held
            swap(&slotValues[slot], &oldValues[i])
        }
    }
}
