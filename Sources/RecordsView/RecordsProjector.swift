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
    /// 6: rows in a key-value store, name postings by year, the outstanding ranking, stream
    /// versions and decision states, completions keyed by completion and request time, and
    /// counted per completion day (1 was the snapshot of in-memory books; 2 to 5 earlier
    /// layouts of these rows).
    public static let version = 6

    private let store: KVStore
    /// Requests recently written, decoded (about 550 bytes each with their strings): most
    /// events of a request follow its report closely. 50,000 rebuilt 1,000,000 events as
    /// fast as 150,000 did, in 40–70 MB less memory (bench/RESULTS.md).
    private var records = TwoGenerationCache<RequestRef, CachedRequest>(limit: 50_000)
    /// Tallies (tenants, days, customers, products) buffered before they are written; when
    /// full, all are written and dropped. 25,000 rebuilt 1,000,000 events of 60 tenants in
    /// 10.2–10.5 s and 262–275 MB where 100,000 took 11.9–12.6 s and 314–334 MB (smaller
    /// tables stay in the processor's caches); one tenant's events need far fewer.
    private let tallies = TallyBuffer(limit: 25_000)
    private var dirtyLasts: Set<GroupRef> = []
    /// Names whose search rows are known to be written (else a lookup in the store).
    private var knownNames = TwoGenerationCache<RequestRef, Bool>(limit: 25_000)

    /// A projector writing into `store` (its writer).
    public init(store: KVStore) { self.store = store }

    /// A request's rows, decoded. A class: the cache, the event being applied and the
    /// tallies pass it around by reference — as a struct of ~250 bytes its copies were the
    /// projector's largest `memmove`s, each retaining a dozen strings. A change makes a
    /// `copy()` to change, so the old state stays what it was.
    final class CachedRequest {
        var columns: RequestColumns
        var details: RequestDetails

        init(columns: RequestColumns, details: RequestDetails) {
            self.columns = columns
            self.details = details
        }

        func copy() -> CachedRequest { CachedRequest(columns: columns, details: details) }
    }

    /// A request's identity in the cache (short strings: no allocation, cheap hashing).
    struct RequestRef: Hashable {
        let tenant: String
        let id: String
    }

    /// A customer's or product's tally whose newest request must be found again (the one
    /// it had was deleted, moved or renamed).
    struct GroupRef: Hashable {
        let tenant: String
        let isCustomer: Bool
        let id: String
    }

    // MARK: Applying events

    public func apply(_ event: RawEvent) throws {
        guard let type = EventType(named: event.type) else {
            throw ViewDamage(view: Self.name, "event at \(event.position) has type \(String(decoding: event.type, as: UTF8.self)), which this build does not know")
        }
        let kind = EventKind(type)
        let tenant = String(decoding: event.tenant, as: UTF8.self)
        switch kind {
        case .customer, .customerRemoved, .product, .productRemoved:
            let data = try EventData.decode(Array(event.data), type: type.name, schemaVersion: event.schemaVersion)
            if kind == .customer || kind == .customerRemoved { try applyCustomer(tenant, event, type, data, removed: kind == .customerRemoved) } else {
                try applyProduct(tenant, event, type, data, removed: kind == .productRemoved)
            }
        default:
            guard event.schemaVersion >= 1 && event.schemaVersion <= type.schemaVersion else {
                throw ViewDamage(view: Self.name, "event at \(event.position): \(type.name) schema version \(event.schemaVersion) is newer than this build reads")
            }
            let fields = try RecordFields(event.data, type: type.name, schemaVersion: event.schemaVersion)
            let actor = String(decoding: event.actor, as: UTF8.self)
            if kind == .reported { try report(tenant, event, fields, actor) } else { try change(tenant, kind, event, fields, actor) }
        }
        if tallies.isFull { try tallies.write(to: store) }
    }

    /// Writes what is buffered and settles what was left for later, so that the store holds
    /// exactly the view of the events applied so far: call before each commit.
    public func prepareCommit() throws {
        try tallies.write(to: store)
        guard !dirtyLasts.isEmpty else { return }
        let snapshot = store.writerSnapshot()
        for group in dirtyLasts.sorted(by: { ($0.tenant, $0.id, $0.isCustomer ? 1 : 0) < ($1.tenant, $1.id, $1.isCustomer ? 1 : 0) }) {
            try recomputeLast(group, snapshot)
        }
        dirtyLasts.removeAll()
        try tallies.write(to: store)
    }

    private func applyCustomer(_ tenant: String, _ e: RawEvent, _ type: EventType, _ data: EventData, removed: Bool) throws {
        guard let id = data.string(.customerId) else { return }
        let key = RowKeys.customer(tenant, id)
        var stored = try read(key) { try StoredParty<CustomerRow>(id: id, decoding: $0) }
            ?? StoredParty(row: CustomerRow(id: id, number: "", name: "", region: nil, city: nil, country: nil, removed: false), version: 0, decision: .none)
        var c = stored.row
        if let v = data.string(.number) { c.number = v }
        if let v = data.string(.name) { c.name = v }
        if let v = data.string(.region) { c.region = v }
        if let v = data.string(.city) { c.city = v }
        if let v = data.string(.country) { c.country = v }
        if removed { c.removed = true }
        stored.row = c
        stored.version = e.streamVersion
        stored.decision = stored.decision.evolved(by: type, data)
        try store.put(key, stored.encoded())
    }

    private func applyProduct(_ tenant: String, _ e: RawEvent, _ type: EventType, _ data: EventData, removed: Bool) throws {
        guard let id = data.string(.productId) else { return }
        let key = RowKeys.product(tenant, id)
        var stored = try read(key) { try StoredParty<ProductRow>(id: id, decoding: $0) }
            ?? StoredParty(row: ProductRow(id: id, sku: "", name: "", sizes: [], removed: false), version: 0, decision: .none)
        var p = stored.row
        if let v = data.string(.sku) { p.sku = v }
        if let v = data.string(.name) { p.name = v }
        if let v = data.strings(.sizes) { p.sizes = v }
        if removed { p.removed = true }
        stored.row = p
        stored.version = e.streamVersion
        stored.decision = stored.decision.evolved(by: type, data)
        try store.put(key, stored.encoded())
    }

    private func report(_ tenant: String, _ e: RawEvent, _ f: RecordFields, _ actor: String) throws {
        guard let id = f.recordId, let customerId = f.customerId, let productId = f.productId else { return }
        // A stream's first event is its first: only a second report of one record (which the
        // rules forbid) needs the old one removed.
        if e.streamVersion != 1, let old = try load(tenant, id) { try remove(tenant, id, old) }
        let at = e.businessTime
        let request = CachedRequest(
            columns: RequestColumns(status: .pending, quantity: f.quantity ?? 0, delivered: 0, completedAt: nil, updatedAt: at,
                                    updatedBy: actor, deliveries: 0, customerId: customerId, productId: productId, size: f.size,
                                    head: e.position.offset, version: e.streamVersion),
            // The names come with the event (schema version 2); a version-1 event shows ids.
            details: RequestDetails(requestedAt: at, customerName: f.customerName ?? customerId, productName: f.productName ?? productId,
                                    notes: f.notes, reason: nil, createdBy: actor))
        try add(tenant, id, request)
    }

    /// Applies a change to an existing request (every type but the report).
    private func change(_ tenant: String, _ kind: EventKind, _ e: RawEvent, _ f: RecordFields, _ actor: String) throws {
        guard let id = f.recordId, let old = try load(tenant, id) else { return }
        let new = old.copy()
        let at = e.businessTime
        switch kind {
        case .amended:
            if let q = f.quantity { new.columns.quantity = q }
            if let n = f.notes { new.details.notes = n }
            if let s = f.size { new.columns.size = s }
            if let c = f.customerId { new.columns.customerId = c; new.details.customerName = f.customerName ?? c }
            if let p = f.productId { new.columns.productId = p; new.details.productName = f.productName ?? p }
            if new.columns.status == .pending && new.columns.delivered >= new.columns.quantity {
                new.columns.status = .completed
                new.columns.completedAt = at
            }
        case .delivery:
            new.columns.delivered = new.columns.delivered.addingReportingOverflow(f.quantity ?? 0).partialValue
            new.columns.deliveries += 1
            if new.columns.delivered >= new.columns.quantity { new.columns.status = .completed; new.columns.completedAt = at }
        case .closed:
            new.columns.status = .completed
            new.columns.completedAt = at
            new.details.reason = f.reason
        case .refunded:
            new.columns.status = .refunded
            new.columns.completedAt = at
            new.details.reason = f.reason
        case .deleted:
            new.columns.status = .deleted
            new.details.reason = f.reason ?? new.details.reason
        default:
            return
        }
        new.columns.updatedBy = actor
        new.columns.updatedAt = at
        new.columns.head = e.position.offset
        new.columns.version = e.streamVersion
        try replace(tenant, id, old, with: new)
    }

    // MARK: Requests

    private func add(_ tenant: String, _ id: String, _ r: CachedRequest) throws {
        let at = r.details.requestedAt, month = ViewKey.month(of: at)
        try put({ RowKeys.requestByTime(&$0, tenant, at, id) }, value: { r.columns.encode(into: &$0) })
        try put({ RowKeys.requestByID(&$0, tenant, id) }, value: { r.details.encode(into: &$0) })
        try put({ RowKeys.posting(&$0, tenant, ViewKey.customerPosting, month, r.columns.customerId, at, id) })
        try put({ RowKeys.posting(&$0, tenant, ViewKey.productPosting, month, r.columns.productId, at, id) },
                value: { RowKeys.productPostingValue(&$0, customer: r.columns.customerId, deleted: r.columns.status == .deleted) })
        if let notes = r.details.notes {
            for word in Set(SearchText.words(notes)) { try put({ RowKeys.notesWord(&$0, tenant, month, word, at, id) }) }
        }
        if r.columns.status == .completed, let done = r.columns.completedAt { try put({ RowKeys.completion(&$0, tenant, done, at, id) }) }
        let known = try count(tenant, old: nil, new: Contribution(r))
        for name in names(r) {
            // A name its customer's (or product's) newest request was recorded with is
            // registered already: only a new or renamed party's name is looked up.
            let registered = (known.customer && name == r.details.customerName) || (known.product && name == r.details.productName)
            if !registered { try registerName(tenant, name) }
            try put({ RowKeys.namePosting(&$0, tenant, month, name, at, id) })
        }
        records.set(RequestRef(tenant: tenant, id: id), r)
    }

    /// The distinct names a request was recorded with.
    private func names(_ r: CachedRequest) -> [String] {
        r.details.customerName == r.details.productName ? [r.details.customerName] : [r.details.customerName, r.details.productName]
    }

    private var keyBuffer: [UInt8] = []
    private var valueBuffer: [UInt8] = []

    /// Writes a row whose key (and value) are built in reusable buffers: no allocation.
    private func put(_ key: (inout [UInt8]) -> Void, value: ((inout [UInt8]) -> Void)? = nil) throws {
        keyBuffer.removeAll(keepingCapacity: true)
        key(&keyBuffer)
        valueBuffer.removeAll(keepingCapacity: true)
        value?(&valueBuffer)
        try keyBuffer.withUnsafeBytes { k in try valueBuffer.withUnsafeBytes { v in try store.put(k, v) } }
    }

    private func delete(_ key: (inout [UInt8]) -> Void) throws {
        keyBuffer.removeAll(keepingCapacity: true)
        key(&keyBuffer)
        try keyBuffer.withUnsafeBytes { try store.delete($0) }
    }

    /// Removes every row of a request (a report that replaces an earlier one).
    private func remove(_ tenant: String, _ id: String, _ r: CachedRequest) throws {
        let at = r.details.requestedAt, month = ViewKey.month(of: at)
        try delete { RowKeys.requestByTime(&$0, tenant, at, id) }
        try delete { RowKeys.requestByID(&$0, tenant, id) }
        try delete { RowKeys.posting(&$0, tenant, ViewKey.customerPosting, month, r.columns.customerId, at, id) }
        try delete { RowKeys.posting(&$0, tenant, ViewKey.productPosting, month, r.columns.productId, at, id) }
        for name in names(r) { try delete { RowKeys.namePosting(&$0, tenant, month, name, at, id) } }
        for word in Set(SearchText.words(r.details.notes ?? "")) { try delete { RowKeys.notesWord(&$0, tenant, month, word, at, id) } }
        if r.columns.status == .completed, let done = r.columns.completedAt { try delete { RowKeys.completion(&$0, tenant, done, at, id) } }
        try count(tenant, old: Contribution(r), new: nil)
    }

    private func replace(_ tenant: String, _ id: String, _ old: CachedRequest, with new: CachedRequest) throws {
        let at = old.details.requestedAt, month = ViewKey.month(of: at)
        precondition(new.details.requestedAt == at, "a request's time never changes")
        try put({ RowKeys.requestByTime(&$0, tenant, at, id) }, value: { new.columns.encode(into: &$0) })
        if new.details != old.details { try put({ RowKeys.requestByID(&$0, tenant, id) }, value: { new.details.encode(into: &$0) }) }
        if new.columns.customerId != old.columns.customerId {
            try delete { RowKeys.posting(&$0, tenant, ViewKey.customerPosting, month, old.columns.customerId, at, id) }
            try put { RowKeys.posting(&$0, tenant, ViewKey.customerPosting, month, new.columns.customerId, at, id) }
        }
        let oldDeleted = old.columns.status == .deleted, newDeleted = new.columns.status == .deleted
        if new.columns.productId != old.columns.productId || new.columns.customerId != old.columns.customerId || oldDeleted != newDeleted {
            if new.columns.productId != old.columns.productId {
                try delete { RowKeys.posting(&$0, tenant, ViewKey.productPosting, month, old.columns.productId, at, id) }
            }
            try put({ RowKeys.posting(&$0, tenant, ViewKey.productPosting, month, new.columns.productId, at, id) },
                    value: { RowKeys.productPostingValue(&$0, customer: new.columns.customerId, deleted: newDeleted) })
        }
        let oldNames = names(old), newNames = names(new)
        if oldNames != newNames {
            for name in oldNames where !newNames.contains(name) { try delete { RowKeys.namePosting(&$0, tenant, month, name, at, id) } }
            for name in newNames where !oldNames.contains(name) {
                try registerName(tenant, name)
                try put { RowKeys.namePosting(&$0, tenant, month, name, at, id) }
            }
        }
        if new.details.notes != old.details.notes {
            let oldWords = Set(SearchText.words(old.details.notes ?? "")), newWords = Set(SearchText.words(new.details.notes ?? ""))
            for word in oldWords.subtracting(newWords) { try delete { RowKeys.notesWord(&$0, tenant, month, word, at, id) } }
            for word in newWords.subtracting(oldWords) { try put { RowKeys.notesWord(&$0, tenant, month, word, at, id) } }
        }
        let oldDone = old.columns.status == .completed ? old.columns.completedAt : nil
        let newDone = new.columns.status == .completed ? new.columns.completedAt : nil
        if oldDone != newDone {
            if let t = oldDone { try delete { RowKeys.completion(&$0, tenant, t, at, id) } }
            if let t = newDone { try put { RowKeys.completion(&$0, tenant, t, at, id) } }
        }
        try count(tenant, old: Contribution(old), new: Contribution(new))
        records.set(RequestRef(tenant: tenant, id: id), new)
    }

    /// A request's rows: from the cache, or its details (by id) and then its columns (by time).
    private func load(_ tenant: String, _ id: String) throws -> CachedRequest? {
        let key = RequestRef(tenant: tenant, id: id)
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
        let known = RequestRef(tenant: tenant, id: name)
        if knownNames.get(known) != nil { return }
        let key = RowKeys.name(tenant, name)
        let stored = try key.withUnsafeBytes { k in try store.withValue(k) { $0 != nil } }
        if !stored {
            try store.put(key, [])
            for word in Set(SearchText.words(name)) { try store.put(RowKeys.nameWord(tenant, word, name), []) }
        }
        knownNames.set(known, true)
    }

    // MARK: Tallies

    /// What a request's state adds to the tallies, read once from the request: every update
    /// of `count` uses these few fields (when it took optional requests, then structs, the
    /// copies made for its closures were 7 % of a rebuild's projector thread).
    private struct Contribution {
        let tally: Tally
        let requestedAt: Int64
        /// When it was completed, if it is (the completion day it counts in).
        let completedAt: Int64?
        /// Not deleted: it may be its customer's or product's newest request.
        let counted: Bool
        let customerId: String, productId: String
        let customerName: String, productName: String

        init(_ r: CachedRequest) {
            tally = Tally.of(r.columns, requestedAt: r.details.requestedAt)
            requestedAt = r.details.requestedAt
            completedAt = r.columns.status == .completed ? r.columns.completedAt : nil
            counted = r.columns.status != .deleted
            customerId = r.columns.customerId
            productId = r.columns.productId
            customerName = r.details.customerName
            productName = r.details.productName
        }

        func group(customer: Bool) -> String { customer ? customerId : productId }
        func name(customer: Bool) -> String { customer ? customerName : productName }
    }

    /// Moves a request's contribution from its old state to its new one (nil: none) in every
    /// tally it counts in; keys that stay the same get the difference in one update. Returns,
    /// for a request new to its customer (product) — a report —, whether that group's newest
    /// request had the same name before: such a name is registered (`registerName`), since
    /// every name a group's newest request can have came with a request that registered it
    /// (false for a request that stays in its group: no caller asks).
    @discardableResult
    private func count(_ tenant: String, old: Contribution?, new: Contribution?) throws -> (customer: Bool, product: Bool) {
        var delta = new?.tally ?? Tally()
        if let oldTally = old?.tally { delta.add(oldTally, sign: -1) }
        let at = new?.requestedAt ?? old?.requestedAt ?? 0
        let isNew = new != nil
        try tallies.updateTotals(tenant, store) { t in
            t.tally.add(delta, sign: 1)
            if isNew {
                t.firstRequestAt = min(t.firstRequestAt, at)
                t.lastRequestAt = max(t.lastRequestAt, at)
            }
        }
        try tallies.updateDay(tenant, ViewKey.day(of: at), store) { $0.add(delta, sign: 1) }
        // Completions by the day they happened (the dashboard's trend): a request moves out
        // of its old completion day and into its new one.
        let oldDone = old?.completedAt, newDone = new?.completedAt
        if oldDone != newDone {
            if let done = oldDone { try tallies.updateDay(tenant, ViewKey.day(of: done), kind: ViewKey.completionDay, store) { $0.completed &-= 1 } }
            if let done = newDone { try tallies.updateDay(tenant, ViewKey.day(of: done), kind: ViewKey.completionDay, store) { $0.completed &+= 1 } }
        }
        return (try countInGroups(tenant, old, new, delta, customer: true), try countInGroups(tenant, old, new, delta, customer: false))
    }

    /// `count` for the request's customer (or product): the difference when the group stays,
    /// else out of the old group and into the new one; its newest request is noted, or
    /// marked to be found again when this request stops being it. Returns whether a request
    /// new to the group found its name as the group's newest request's (see `count`).
    private func countInGroups(_ tenant: String, _ old: Contribution?, _ new: Contribution?, _ delta: Tally, customer: Bool) throws -> Bool {
        var nameWasNewest = false
        let oldGroup = old?.group(customer: customer), newGroup = new?.group(customer: customer)
        if let old, let new, oldGroup == newGroup {
            let keepsLast = old.counted == new.counted && old.name(customer: customer) == new.name(customer: customer)
            try tallies.updateGroup(tenant, customer, new.group(customer: customer), store) { g in
                g.tally.add(delta, sign: 1)
                if !keepsLast && old.counted && old.requestedAt == g.lastAt { markLast(tenant, customer, old.group(customer: customer)) }
                if new.counted { g.noteRequest(at: new.requestedAt, name: new.name(customer: customer)) }
            }
            return false
        }
        if let old, let oldGroup {
            try tallies.updateGroup(tenant, customer, oldGroup, store) { g in
                g.tally.add(old.tally, sign: -1)
                if old.counted && old.requestedAt == g.lastAt { markLast(tenant, customer, oldGroup) }
            }
        }
        if let new, let newGroup {
            try tallies.updateGroup(tenant, customer, newGroup, store) { g in
                nameWasNewest = g.isNewestName(new.name(customer: customer))
                g.tally.add(new.tally, sign: 1)
                if new.counted { g.noteRequest(at: new.requestedAt, name: new.name(customer: customer)) }
            }
        }
        return nameWasNewest
    }

    private func markLast(_ tenant: String, _ isCustomer: Bool, _ id: String) {
        dirtyLasts.insert(GroupRef(tenant: tenant, isCustomer: isCustomer, id: id))
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
        try tallies.updateGroup(group.tenant, group.isCustomer, group.id, store) { g in
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

