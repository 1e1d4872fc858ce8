/// A cache with a bound on its entries: two generations of `limit / 2`, the older dropped
/// whole when the newer fills up. Lookups in the older generation move the entry forward,
/// so the entries in use stay while the rest go. (`IngestMemory` turns its generations the
/// same way, but writes the older one out instead of dropping it.)
///
/// Inlinable: used from other modules (the records projector's request cache), an
/// unspecialized copy hashed through witness tables and instantiated its dictionaries'
/// metadata at every call — the cache took 15 % of a rebuild's `apply`, 6 % specialized
/// (bench/RESULTS.md). `package` members marked inlinable were not specialized.
public struct TwoGenerationCache<Key: Hashable, Value> {
    @usableFromInline var current: [Key: Value] = [:]
    @usableFromInline var previous: [Key: Value] = [:]
    /// Entries per generation.
    public let limit: Int

    @inlinable public init(limit: Int) { self.limit = max(1, limit / 2) }

    @inlinable public var count: Int { current.count + previous.count }

    @inlinable public mutating func get(_ key: Key) -> Value? {
        if let v = current[key] { return v }
        guard let v = previous.removeValue(forKey: key) else { return nil }
        set(key, v)
        return v
    }

    @inlinable public mutating func set(_ key: Key, _ value: Value) {
        // A full generation becomes the previous one before a new key is inserted (not
        // after: inserting into a dictionary at its capacity would grow and rehash it all,
        // just before it is dropped). The previous one's table, emptied, takes the next
        // entries: no new table per turn.
        if current.count >= limit, current.index(forKey: key) == nil {
            previous.removeAll(keepingCapacity: true)
            swap(&previous, &current)
            current.reserveCapacity(limit)
        }
        current[key] = value
    }

    @inlinable public mutating func removeAll() {
        current = [:]
        previous = [:]
    }
}
