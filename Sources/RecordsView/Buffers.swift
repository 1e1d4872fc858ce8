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
        // One hash of the key, unless this insertion starts a new generation (rarely).
        guard current.updateValue(value, forKey: key) == nil, current.count > limit else { return }
        current.removeValue(forKey: key)
        previous = current
        current = [:]
        current.reserveCapacity(limit)
        current[key] = value
    }

    mutating func removeAll() {
        current = [:]
        previous = [:]
    }
}
