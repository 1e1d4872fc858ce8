import EventStore
import KVStore
import OutOfStock
import Projections

/// Keeps the records view (docs/PROJECTIONS.md) in a key-value store, one event at a
/// time: each request's rows and postings, each customer's and product's row, and the
/// tallies — changed in place, so the cost of an event does not depend on how many came
/// before it.
///
/// Rules mirror `StreamState.evolved` and the dashboard's definitions; the view never looks
/// at another stream's state while applying an event, so partitions may be applied in any
/// order (and in parallel) and give the same view.
public final class RecordsProjector: ViewProjector {
    public static let name = "records"
    /// 2: rows in a key-value store (1 was the snapshot of in-memory books).
    public static let version = 2

    private let store: KVStore
    private var records = TwoGenerationCache<HashedKey, CachedRequest>(limit: 200_000)
    private var tallies: [HashedKey: TallyEntry] = [:]
    private var dirtyLasts: Set<GroupRef> = []
    private var knownNames = TwoGenerationCache<HashedKey, Bool>(limit: 100_000)
    /// Tallies kept in memory before they are written out (a commit writes them all).
    private let tallyLimit = 50_000

    /// A projector writing into `store` (its writer).
    public init(store: KVStore) { self.store = store }

    struct CachedRequest {
        var columns: RequestColumns
        var details: RequestDetails
    }

    enum TallyEntry {
        case totals(TenantTotals)
        case day(Tally)
        case group(GroupTally)
        case pending(PendingTally)
    }

    /// A customer's or product's tally whose newest request must be found again (the one
    /// it had was deleted, moved or renamed).
    struct GroupRef: Hashable {
        let tenant: String
        let isCustomer: Bool
        let id: String
    }

    // MARK: Applying events

    public func apply(_ events: [StoredEvent]) throws {
        for event in events {
            let data = try EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion)
            switch event.type {
            case "CustomerRegistered", "CustomerUpdated", "CustomerRemoved": try applyCustomer(event, data)
            case "ProductRegistered", "ProductUpdated", "ProductRemoved": try applyProduct(event, data)
            case "OutOfStockReported": try report(event, data)
            default: try change(event, data)
            }
        }
        if tallies.count > tallyLimit { try writeTallies() }
    }

    /// Writes what is buffered and settles what was left for later, so that the store holds
    /// exactly the view of the events applied so far: call before each commit.
    public func prepareCommit() throws {
        try writeTallies()
        guard !dirtyLasts.isEmpty else { return }
        let snapshot = store.writerSnapshot()
        for group in dirtyLasts.sorted(by: { ($0.tenant, $0.id, $0.isCustomer ? 1 : 0) < ($1.tenant, $1.id, $1.isCustomer ? 1 : 0) }) {
            try recomputeLast(group, snapshot)
        }
        dirtyLasts.removeAll()
        try writeTallies()
    }

    private func applyCustomer(_ e: StoredEvent, _ data: EventData) throws {
        guard let id = data.string(.customerId) else { return }
        let key = RowKeys.customer(e.tenant, id)
        var c = try read(key) { try CustomerRow(id: id, decoding: $0) }
            ?? CustomerRow(id: id, number: "", name: "", region: nil, city: nil, country: nil, removed: false)
        if let v = data.string(.number) { c.number = v }
        if let v = data.string(.name) { c.name = v }
        if let v = data.string(.region) { c.region = v }
        if let v = data.string(.city) { c.city = v }
        if let v = data.string(.country) { c.country = v }
        if e.type == "CustomerRemoved" { c.removed = true }
        try store.put(key, c.encoded())
    }

    private func applyProduct(_ e: StoredEvent, _ data: EventData) throws {
        guard let id = data.string(.productId) else { return }
        let key = RowKeys.product(e.tenant, id)
        var p = try read(key) { try ProductRow(id: id, decoding: $0) } ?? ProductRow(id: id, sku: "", name: "", sizes: [], removed: false)
        if let v = data.string(.sku) { p.sku = v }
        if let v = data.string(.name) { p.name = v }
        if let v = data.strings(.sizes) { p.sizes = v }
        if e.type == "ProductRemoved" { p.removed = true }
        try store.put(key, p.encoded())
    }

    private func report(_ e: StoredEvent, _ data: EventData) throws {
        guard let id = data.string(.recordId), let customerId = data.string(.customerId), let productId = data.string(.productId) else { return }
        // A stream's first event is its first: only a second report of one record (which the
        // rules forbid) needs the old one removed.
        if e.streamVersion != 1, let old = try load(e.tenant, id) { try remove(e.tenant, id, old) }
        let at = e.businessTime
        let request = CachedRequest(
            columns: RequestColumns(status: .pending, quantity: data.integer(.quantity) ?? 0, delivered: 0, completedAt: nil, updatedAt: at,
                                    updatedBy: e.actor, deliveries: 0, customerId: customerId, productId: productId, size: data.string(.size),
                                    head: e.position.offset),
            // The names come with the event (schema version 2); a version-1 event shows ids.
            details: RequestDetails(requestedAt: at, customerName: data.string(.customerName) ?? customerId,
                                    productName: data.string(.productName) ?? productId, notes: data.string(.notes), reason: nil, createdBy: e.actor))
        try add(e.tenant, id, request)
    }

    /// Applies a change to an existing request (every type but the report).
    private func change(_ e: StoredEvent, _ data: EventData) throws {
        guard let id = data.string(.recordId), let old = try load(e.tenant, id) else { return }
        var new = old
        let at = e.businessTime
        switch e.type {
        case "OutOfStockAmended":
            if let q = data.integer(.quantity) { new.columns.quantity = q }
            if let n = data.string(.notes) { new.details.notes = n }
            if let s = data.string(.size) { new.columns.size = s }
            if let c = data.string(.customerId) { new.columns.customerId = c; new.details.customerName = data.string(.customerName) ?? c }
            if let p = data.string(.productId) { new.columns.productId = p; new.details.productName = data.string(.productName) ?? p }
            if new.columns.status == .pending && new.columns.delivered >= new.columns.quantity {
                new.columns.status = .completed
                new.columns.completedAt = at
            }
        case "DeliveryRecorded":
            new.columns.delivered = new.columns.delivered.addingReportingOverflow(data.integer(.quantity) ?? 0).partialValue
            new.columns.deliveries += 1
            if new.columns.delivered >= new.columns.quantity { new.columns.status = .completed; new.columns.completedAt = at }
        case "OutOfStockClosed":
            new.columns.status = .completed
            new.columns.completedAt = at
            new.details.reason = data.string(.reason)
        case "RefundRecorded":
            new.columns.status = .refunded
            new.columns.completedAt = at
            new.details.reason = data.string(.reason)
        case "OutOfStockDeleted":
            new.columns.status = .deleted
            new.details.reason = data.string(.reason) ?? new.details.reason
        default:
            return
        }
        new.columns.updatedBy = e.actor
        new.columns.updatedAt = at
        new.columns.head = e.position.offset
        try replace(e.tenant, id, old, with: new)
    }

    // MARK: Requests

    private func add(_ tenant: String, _ id: String, _ r: CachedRequest) throws {
        let at = r.details.requestedAt, month = ViewKey.month(of: at)
        try store.put(RowKeys.requestByTime(tenant, at, id), r.columns.encoded())
        try store.put(RowKeys.requestByID(tenant, id), r.details.encoded())
        try store.put(RowKeys.posting(tenant, ViewKey.customerPosting, month, r.columns.customerId, at, id), [])
        try store.put(RowKeys.posting(tenant, ViewKey.productPosting, month, r.columns.productId, at, id), [])
        for name in Set([r.details.customerName, r.details.productName]) {
            try registerName(tenant, name)
            try store.put(RowKeys.namePosting(tenant, month, name, at, id), [])
        }
        for word in Set(SearchText.words(r.details.notes ?? "")) { try store.put(RowKeys.notesWord(tenant, month, word, at, id), []) }
        if r.columns.status == .completed, let done = r.columns.completedAt { try store.put(RowKeys.completion(tenant, done, id), []) }
        try count(tenant, r, sign: 1)
        records.set(RowKeys.cacheKey(tenant, id), r)
    }

    /// Removes every row of a request (a report that replaces an earlier one).
    private func remove(_ tenant: String, _ id: String, _ r: CachedRequest) throws {
        let at = r.details.requestedAt, month = ViewKey.month(of: at)
        try store.delete(RowKeys.requestByTime(tenant, at, id))
        try store.delete(RowKeys.requestByID(tenant, id))
        try store.delete(RowKeys.posting(tenant, ViewKey.customerPosting, month, r.columns.customerId, at, id))
        try store.delete(RowKeys.posting(tenant, ViewKey.productPosting, month, r.columns.productId, at, id))
        for name in Set([r.details.customerName, r.details.productName]) { try store.delete(RowKeys.namePosting(tenant, month, name, at, id)) }
        for word in Set(SearchText.words(r.details.notes ?? "")) { try store.delete(RowKeys.notesWord(tenant, month, word, at, id)) }
        if r.columns.status == .completed, let done = r.columns.completedAt { try store.delete(RowKeys.completion(tenant, done, id)) }
        try count(tenant, r, sign: -1)
    }

    private func replace(_ tenant: String, _ id: String, _ old: CachedRequest, with new: CachedRequest) throws {
        let at = old.details.requestedAt, month = ViewKey.month(of: at)
        precondition(new.details.requestedAt == at, "a request's time never changes")
        try store.put(RowKeys.requestByTime(tenant, at, id), new.columns.encoded())
        if new.details != old.details { try store.put(RowKeys.requestByID(tenant, id), new.details.encoded()) }
        if new.columns.customerId != old.columns.customerId {
            try store.delete(RowKeys.posting(tenant, ViewKey.customerPosting, month, old.columns.customerId, at, id))
            try store.put(RowKeys.posting(tenant, ViewKey.customerPosting, month, new.columns.customerId, at, id), [])
        }
        if new.columns.productId != old.columns.productId {
            try store.delete(RowKeys.posting(tenant, ViewKey.productPosting, month, old.columns.productId, at, id))
            try store.put(RowKeys.posting(tenant, ViewKey.productPosting, month, new.columns.productId, at, id), [])
        }
        let oldNames = Set([old.details.customerName, old.details.productName]), newNames = Set([new.details.customerName, new.details.productName])
        if oldNames != newNames {
            for name in oldNames.subtracting(newNames) { try store.delete(RowKeys.namePosting(tenant, month, name, at, id)) }
            for name in newNames.subtracting(oldNames) {
                try registerName(tenant, name)
                try store.put(RowKeys.namePosting(tenant, month, name, at, id), [])
            }
        }
        if new.details.notes != old.details.notes {
            let oldWords = Set(SearchText.words(old.details.notes ?? "")), newWords = Set(SearchText.words(new.details.notes ?? ""))
            for word in oldWords.subtracting(newWords) { try store.delete(RowKeys.notesWord(tenant, month, word, at, id)) }
            for word in newWords.subtracting(oldWords) { try store.put(RowKeys.notesWord(tenant, month, word, at, id), []) }
        }
        let oldDone = old.columns.status == .completed ? old.columns.completedAt : nil
        let newDone = new.columns.status == .completed ? new.columns.completedAt : nil
        if oldDone != newDone {
            if let t = oldDone { try store.delete(RowKeys.completion(tenant, t, id)) }
            if let t = newDone { try store.put(RowKeys.completion(tenant, t, id), []) }
        }
        // A group's newest request must be found again only when the request stops
        // counting for it (deleted, moved to another group) or its name changes.
        func sameForLast(_ isCustomer: Bool) -> Bool {
            let counted = old.columns.status != .deleted && new.columns.status != .deleted
            return isCustomer
                ? counted && old.columns.customerId == new.columns.customerId && old.details.customerName == new.details.customerName
                : counted && old.columns.productId == new.columns.productId && old.details.productName == new.details.productName
        }
        try count(tenant, old, sign: -1, keepLast: (sameForLast(true), sameForLast(false)))
        try count(tenant, new, sign: 1)
        records.set(RowKeys.cacheKey(tenant, id), new)
    }

    /// A request's rows: from the cache, or its details (by id) and then its columns (by time).
    private func load(_ tenant: String, _ id: String) throws -> CachedRequest? {
        let key = RowKeys.cacheKey(tenant, id)
        if let cached = records.get(key) { return cached }
        guard let details = try read(RowKeys.requestByID(tenant, id), { try RequestDetails(decoding: $0) }) else { return nil }
        guard let columns = try read(RowKeys.requestByTime(tenant, details.requestedAt, id), { try RequestColumns(decoding: $0) }) else {
            throw ViewDamage(view: Self.name, "request \(id) of tenant \(tenant) has details but no columns")
        }
        let request = CachedRequest(columns: columns, details: details)
        records.set(key, request)
        return request
    }

    /// Decodes the row under `key`, or nil; a row that does not decode is damage.
    private func read<T>(_ key: [UInt8], _ decode: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try key.withUnsafeBytes { k in
            try store.withValue(k) { value in
                guard let value else { return nil }
                do { return try decode(value) } catch is RowDamage {
                    throw ViewDamage(view: Self.name, "a stored row does not decode (key \(RowKeys.describe(key)))")
                }
            }
        }
    }

    // MARK: Names

    /// Makes a recorded name findable by its words (once per distinct name).
    private func registerName(_ tenant: String, _ name: String) throws {
        let key = RowKeys.name(tenant, name)
        let hashed = HashedKey(key)
        if knownNames.get(hashed) != nil { return }
        let stored = try key.withUnsafeBytes { k in try store.withValue(k) { $0 != nil } }
        if !stored {
            try store.put(key, [])
            for word in Set(SearchText.words(name)) { try store.put(RowKeys.nameWord(tenant, word, name), []) }
        }
        knownNames.set(hashed, true)
    }

    // MARK: Tallies

    /// Adds (sign 1) or subtracts (-1) a request's contribution to every tally it counts in.
    /// `keepLast` says, for the customer and the product, that the request stays their
    /// newest as it was (a subtraction then leaves their newest request alone).
    private func count(_ tenant: String, _ r: CachedRequest, sign: Int64, keepLast: (Bool, Bool) = (false, false)) throws {
        let c = r.columns, at = r.details.requestedAt
        let tally = Tally.of(c, requestedAt: at)
        try update(RowKeys.totals(tenant)) { (t: inout TenantTotals) in
            t.tally.add(tally, sign: sign)
            if sign > 0 {
                t.firstRequestAt = min(t.firstRequestAt, at)
                t.lastRequestAt = max(t.lastRequestAt, at)
            }
        }
        try update(RowKeys.day(tenant, ViewKey.day(of: at))) { (t: inout Tally) in t.add(tally, sign: sign) }
        let counted = c.status != .deleted
        for isCustomer in [true, false] {
            let id = isCustomer ? c.customerId : c.productId
            let name = isCustomer ? r.details.customerName : r.details.productName
            try update(isCustomer ? RowKeys.customerTally(tenant, id) : RowKeys.productTally(tenant, id)) { (g: inout GroupTally) in
                g.tally.add(tally, sign: sign)
                if counted && !(isCustomer ? keepLast.0 : keepLast.1) {
                    if sign > 0 {
                        g.noteRequest(at: at, name: name)
                    } else if at == g.lastAt {
                        // The newest request leaves the group: find the newest again at commit.
                        dirtyLasts.insert(GroupRef(tenant: tenant, isCustomer: isCustomer, id: id))
                    }
                }
            }
        }
        let pending = PendingTally.of(c)
        try update(RowKeys.productSize(tenant, c.productId, c.size ?? "-")) { (t: inout PendingTally) in t.add(pending, sign: sign) }
        var becameDistinct: Int64 = 0
        try update(RowKeys.productCustomer(tenant, c.productId, c.customerId)) { (t: inout PendingTally) in
            let before = t.notDeleted > 0
            t.add(pending, sign: sign)
            let after = t.notDeleted > 0
            becameDistinct = before == after ? 0 : (after ? 1 : -1)
        }
        if becameDistinct != 0 {
            try update(RowKeys.productTally(tenant, c.productId)) { (g: inout GroupTally) in g.customers += becameDistinct }
        }
    }

    private func update<T: TallyValue>(_ key: [UInt8], _ body: (inout T) throws -> Void) throws {
        let hashed = HashedKey(key)
        var value: T
        if let entry = tallies[hashed] {
            value = try T.from(entry)
        } else {
            value = try read(key) { try T(decoding: $0) } ?? T()
        }
        try body(&value)
        tallies[hashed] = value.entry
    }

    private func writeTallies() throws {
        for (key, entry) in tallies {
            switch entry {
            case let .totals(t): try store.put(key.bytes, t.encoded())
            // A tally that counts nothing any more is removed, so that a view kept up event by
            // event holds exactly the rows of one rebuilt from the log.
            case let .day(t):
                if t == Tally() { try store.delete(key.bytes); continue }
                var w = RowWriter(capacity: 24)
                t.encode(into: &w)
                try store.put(key.bytes, w.bytes)
            case let .group(g):
                if g.tally == Tally() && g.customers == 0 { try store.delete(key.bytes) } else { try store.put(key.bytes, g.encoded()) }
            case let .pending(p):
                if p.isEmpty { try store.delete(key.bytes) } else { try store.put(key.bytes, p.encoded()) }
            }
        }
        tallies.removeAll(keepingCapacity: true)
    }

    /// Finds a group's newest request not deleted, from its postings (newest month first).
    private func recomputeLast(_ group: GroupRef, _ snapshot: KVSnapshot) throws {
        let totals = try snapshot.get(RowKeys.totals(group.tenant)).map { bytes in try bytes.withUnsafeBytes { try TenantTotals(decoding: $0) } } ?? TenantTotals()
        var lastAt = Int64.min, names: [String] = []
        let kind = group.isCustomer ? ViewKey.customerPosting : ViewKey.productPosting
        months: for month in totals.monthsNewestFirst {
            var prefix = ViewKey.prefix(group.tenant, kind, month: month)
            prefix.append(contentsOf: group.id.utf8)
            prefix.append(0)
            let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
            try it.seekToLast()
            while it.isValid {
                let (at, id) = RowKeys.timeAndID(it.key, after: prefix.count)
                if lastAt != .min && at < lastAt { break months }
                let columns = try snapshot.get(RowKeys.requestByTime(group.tenant, at, id)).map { try $0.withUnsafeBytes { try RequestColumns(decoding: $0) } }
                if let columns, columns.status != .deleted {
                    let details = try snapshot.get(RowKeys.requestByID(group.tenant, id)).map { try $0.withUnsafeBytes { try RequestDetails(decoding: $0) } }
                    lastAt = at
                    names.append((group.isCustomer ? details?.customerName : details?.productName) ?? "")
                }
                try it.prev()
            }
            if lastAt != .min { break }
        }
        let key = group.isCustomer ? RowKeys.customerTally(group.tenant, group.id) : RowKeys.productTally(group.tenant, group.id)
        try update(key) { (g: inout GroupTally) in
            g.lastAt = lastAt
            g.lastName = names.max() ?? ""
        }
    }
}

/// A stored row of a view does not decode, or two rows contradict each other: the view is
/// damaged (it can be rebuilt from the log).
public struct ViewDamage: Error, CustomStringConvertible, Sendable {
    public let view: String
    public let reason: String

    public init(view: String, _ reason: String) {
        self.view = view
        self.reason = reason
    }

    public var description: String { "view \(view) is damaged: \(reason); `backorder replay` rebuilds it from the log" }
}

/// The tallies kept in the projector's buffer.
protocol TallyValue {
    init()
    init(decoding: UnsafeRawBufferPointer) throws
    static func from(_ entry: RecordsProjector.TallyEntry) throws -> Self
    var entry: RecordsProjector.TallyEntry { get }
}

extension TenantTotals: TallyValue {
    static func from(_ entry: RecordsProjector.TallyEntry) throws -> TenantTotals {
        guard case let .totals(v) = entry else { throw RowDamage() }
        return v
    }
    var entry: RecordsProjector.TallyEntry { .totals(self) }
}

extension Tally: TallyValue {
    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        try self.init(from: &r)
        guard r.isAtEnd else { throw RowDamage() }
    }
    static func from(_ entry: RecordsProjector.TallyEntry) throws -> Tally {
        guard case let .day(v) = entry else { throw RowDamage() }
        return v
    }
    var entry: RecordsProjector.TallyEntry { .day(self) }
}

extension GroupTally: TallyValue {
    static func from(_ entry: RecordsProjector.TallyEntry) throws -> GroupTally {
        guard case let .group(v) = entry else { throw RowDamage() }
        return v
    }
    var entry: RecordsProjector.TallyEntry { .group(self) }
}

extension PendingTally: TallyValue {
    init() { self.init(notDeleted: 0) }
    static func from(_ entry: RecordsProjector.TallyEntry) throws -> PendingTally {
        guard case let .pending(v) = entry else { throw RowDamage() }
        return v
    }
    var entry: RecordsProjector.TallyEntry { .pending(self) }
}
