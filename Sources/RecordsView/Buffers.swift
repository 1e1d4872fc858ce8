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
        // A full generation becomes the previous one before a new key is inserted (not
        // after: inserting into a dictionary at its capacity would grow and rehash it all,
        // just before it is dropped).
        if current.count >= limit, current.index(forKey: key) == nil {
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
