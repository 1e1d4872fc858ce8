import KVStore

/// The tallies a projector is changing, in memory: each loaded from the store the first
/// time it is touched, changed in place, and written when the projector writes (at least
/// before every commit). Clean ones stay as a cache; when more than `limit` are held, the
/// next write drops the clean ones (memory stays bounded, whatever the number of
/// customers and products).
final class TallyBuffer {
    struct DayKey: Hashable {
        let tenant: String
        let day: Int64
        /// `ViewKey.day` or `ViewKey.completionDay`.
        let kind: UInt8
    }

    struct GroupKey: Hashable {
        let tenant: String
        let isCustomer: Bool
        let id: String
    }

    struct Entry<Value> {
        var value: Value
        var dirty: Bool
        /// What the store holds (nil: nothing): a group's rank row is moved from it.
        var stored: Value? = nil
    }

    private var totals: [String: Entry<TenantTotals>] = [:]
    private var days: [DayKey: Entry<Tally>] = [:]
    private var groups: [GroupKey: Entry<GroupTally>] = [:]
    private var dirty = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    var count: Int { totals.count + days.count + groups.count }
    var isFull: Bool { count > limit }

    // Each update finds its entry once and changes it in place (`Dictionary.Values`'
    // subscript): no second hash of the key, no copy of the entry and its strings.

    func updateTotals(_ tenant: String, _ store: KVStore, _ body: (inout TenantTotals) -> Void) throws {
        let index = try totals.index(forKey: tenant) ?? insert(tenant, into: &totals) {
            Entry(value: try load(RowKeys.totals(tenant), store) { try TenantTotals(decoding: $0) } ?? TenantTotals(), dirty: false)
        }
        update(&totals.values[index], body)
    }

    func updateDay(_ tenant: String, _ day: Int64, kind: UInt8 = ViewKey.day, _ store: KVStore, _ body: (inout Tally) -> Void) throws {
        let key = DayKey(tenant: tenant, day: day, kind: kind)
        let index = try days.index(forKey: key) ?? insert(key, into: &days) {
            Entry(value: try load(RowKeys.day(tenant, day, kind: kind), store) { try Tally(decoding: $0) } ?? Tally(), dirty: false)
        }
        update(&days.values[index], body)
    }

    func updateGroup(_ tenant: String, _ isCustomer: Bool, _ id: String, _ store: KVStore, _ body: (inout GroupTally) -> Void) throws {
        let key = GroupKey(tenant: tenant, isCustomer: isCustomer, id: id)
        let index = try groups.index(forKey: key) ?? insert(key, into: &groups) {
            let stored = try load(Self.groupKey(key), store) { try GroupTally(decoding: $0) }
            return Entry(value: stored ?? GroupTally(), dirty: false, stored: stored)
        }
        update(&groups.values[index], body)
    }

    private func update<Value>(_ entry: inout Entry<Value>, _ body: (inout Value) -> Void) {
        body(&entry.value)
        if !entry.dirty { dirty += 1 }
        entry.dirty = true
    }

    /// Adds a loaded entry; its index.
    private func insert<Key: Hashable, Value>(_ key: Key, into table: inout [Key: Entry<Value>], _ loaded: () throws -> Entry<Value>) throws -> Dictionary<Key, Entry<Value>>.Index {
        table[key] = try loaded()
        return table.index(forKey: key)!
    }

    static func groupKey(_ key: GroupKey) -> [UInt8] {
        key.isCustomer ? RowKeys.customerTally(key.tenant, key.id) : RowKeys.productTally(key.tenant, key.id)
    }

    private func load<T>(_ key: [UInt8], _ store: KVStore, _ decode: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try key.withUnsafeBytes { k in
            try store.withValue(k) { value in
                guard let value else { return nil }
                do { return try decode(value) } catch {
                    throw ViewDamage(view: RecordsProjector.name, "a stored tally does not decode (key \(RowKeys.describe(key)))")
                }
            }
        }
    }

    /// Writes every changed tally. A tally that counts nothing any more is removed, so that
    /// a view kept up event by event holds exactly the rows of one rebuilt from the log.
    func write(to store: KVStore) throws {
        guard dirty > 0 || isFull else { return }
        func check(_ tally: Tally, _ what: @autoclosure () -> String) throws {
            guard tally.countsAreNonNegative else {
                throw ViewDamage(view: RecordsProjector.name, "the tally of \(what()) counts below zero (\(tally)): its rows and tallies disagree")
            }
        }
        for (tenant, entry) in totals where entry.dirty {
            try check(entry.value.tally, "tenant \(tenant)")
            try store.put(RowKeys.totals(tenant), entry.value.encoded())
            totals[tenant]?.dirty = false
        }
        for (key, entry) in days where entry.dirty {
            try check(entry.value, "day \(key.day) of tenant \(key.tenant)")
            let k = RowKeys.day(key.tenant, key.day, kind: key.kind)
            if entry.value == Tally() {
                try store.delete(k)
            } else {
                var w = RowWriter(capacity: 24)
                entry.value.encode(into: &w)
                try store.put(k, w.bytes)
            }
            days[key]?.dirty = false
        }
        for (key, entry) in groups where entry.dirty {
            let g = entry.value
            try check(g.tally, "\(key.isCustomer ? "customer" : "product") \(key.id) of tenant \(key.tenant)")
            if g.tally == Tally() { try store.delete(Self.groupKey(key)) } else { try store.put(Self.groupKey(key), g.encoded()) }
            // The ranking by outstanding quantity (groups with pending requests only).
            let before = entry.stored.flatMap { $0.tally.pending > 0 ? $0.tally.outstandingQuantity : nil }
            let after = g.tally.pending > 0 ? g.tally.outstandingQuantity : nil
            if before != after {
                if let before { try store.delete(RowKeys.rank(key.tenant, isCustomer: key.isCustomer, outstanding: before, key.id)) }
                if let after { try store.put(RowKeys.rank(key.tenant, isCustomer: key.isCustomer, outstanding: after, key.id), []) }
            }
            groups[key]?.dirty = false
            groups[key]?.stored = g.tally == Tally() ? nil : g
        }
        dirty = 0
        if isFull {
            totals.removeAll()
            days.removeAll()
            groups.removeAll()
        }
    }
}
