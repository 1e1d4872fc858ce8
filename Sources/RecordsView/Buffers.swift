/// A key's bytes with their hash computed once (dictionary keys without SipHash over
/// every byte).
struct HashedKey: Hashable {
    let bytes: [UInt8]
    let hash: UInt64

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        hash = bytes.withUnsafeBytes { FastHash.of($0) }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    static func == (a: HashedKey, b: HashedKey) -> Bool { a.hash == b.hash && a.bytes == b.bytes }
}

/// A 64-bit FNV-1a-style hash of bytes, 8 at a time; for in-memory dictionaries only.
enum FastHash {
    static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(bytes.count)
        var i = 0
        if let base = bytes.baseAddress {
            while i + 8 <= bytes.count {
                h = (h ^ base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01B3
                h ^= h >> 29
                i += 8
            }
            while i < bytes.count {
                h = (h ^ UInt64(base.load(fromByteOffset: i, as: UInt8.self))) &* 0x0000_0100_0000_01B3
                i += 1
            }
        }
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        return h ^ (h >> 33)
    }
}

/// A cache with a bound on its entries: two generations, the older dropped whole when the
/// newer fills up. Lookups in the older generation move the entry forward.
struct TwoGenerationCache<Key: Hashable, Value> {
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]
    let limit: Int

    init(limit: Int) { self.limit = max(1, limit / 2) }

    var count: Int { current.count + previous.count }

    mutating func get(_ key: Key) -> Value? {
        if let v = current[key] { return v }
        guard let v = previous.removeValue(forKey: key) else { return nil }
        set(key, v)
        return v
    }

    mutating func set(_ key: Key, _ value: Value) {
        if current.count >= limit && current[key] == nil {
            previous = current
            current = [:]
            current.reserveCapacity(limit)
        }
        current[key] = value
    }

    mutating func removeAll() {
        current = [:]
        previous = [:]
    }
}
