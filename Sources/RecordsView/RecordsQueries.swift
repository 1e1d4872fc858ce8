import KVStore
import OutOfStock

/// The queries of domain.md for one tenant, answered from a read view of the records view
/// (docs/PROJECTIONS.md, "Queries"). Each reads only the rows its answer needs: tallies for
/// all-time figures, a range of the time index for a range, postings for a customer, a
/// product or a word.
public struct RecordsQueries: Sendable {
    public let snapshot: KVSnapshot
    public let tenant: String

    /// Queries of `tenant` on `snapshot`.
    public init(snapshot: KVSnapshot, tenant: String) {
        self.snapshot = snapshot
        self.tenant = tenant
    }

    /// Whether the tenant has any request, customer or product.
    public func tenantExists() throws -> Bool {
        let it = snapshot.makeIterator(lower: ViewKey.prefix(tenant, 0), upper: ViewKey.end(of: ViewKey.prefix(tenant, 0xFF)))
        try it.seekToFirst()
        return it.isValid
    }

    /// The tenants with any row, sorted.
    public static func tenants(in snapshot: KVSnapshot) throws -> [String] {
        var out: [String] = []
        let it = snapshot.makeIterator()
        try it.seekToFirst()
        while it.isValid {
            guard let zero = it.key.firstIndex(of: 0) else { break }
            let tenant = Array(it.key[0..<zero])
            out.append(String(decoding: tenant, as: UTF8.self))
            try it.seek(tenant + [1])
        }
        return out
    }

    // MARK: Rows

    func decode<T>(_ key: [UInt8], _ decode: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try key.withUnsafeBytes { k in
            try snapshot.withValue(k) { value in
                guard let value else { return nil }
                do { return try decode(value) } catch is RowDamage {
                    throw ViewDamage(view: RecordsProjector.name, "a stored row does not decode (key \(RowKeys.describe(key)))")
                }
            }
        }
    }

    func totals() throws -> TenantTotals { try decode(RowKeys.totals(tenant)) { try TenantTotals(decoding: $0) } ?? TenantTotals() }
    func columns(_ at: Int64, _ id: String) throws -> RequestColumns? { try decode(RowKeys.requestByTime(tenant, at, id)) { try RequestColumns(decoding: $0) } }
    func details(_ id: String) throws -> RequestDetails? { try decode(RowKeys.requestByID(tenant, id)) { try RequestDetails(decoding: $0) } }
    func customerRow(_ id: String) throws -> CustomerRow? { try decode(RowKeys.customer(tenant, id)) { try StoredParty<CustomerRow>(id: id, decoding: $0).row } }
    func productRow(_ id: String) throws -> ProductRow? { try decode(RowKeys.product(tenant, id)) { try StoredParty<ProductRow>(id: id, decoding: $0).row } }

    /// One request's current state.
    public func record(_ id: String) throws -> RecordRow? {
        guard let d = try details(id) else { return nil }
        guard let c = try columns(d.requestedAt, id) else {
            throw ViewDamage(view: RecordsProjector.name, "request \(id) of tenant \(tenant) has details but no columns")
        }
        return RecordRow(id: id, c, d)
    }

    /// The summary of a request whose columns are at hand (its details are read).
    func summary(_ at: Int64, _ id: String, _ c: RequestColumns? = nil) throws -> RecordSummary? {
        guard let c = try c ?? columns(at, id), let d = try details(id) else { return nil }
        return RecordSummary(RecordRow(id: id, c, d))
    }

    /// A party's id and current name (its id when unregistered).
    func party(_ id: String, isCustomer: Bool) throws -> (id: String, name: String) {
        (id, try (isCustomer ? customerRow(id)?.name : productRow(id)?.name) ?? id)
    }

    /// Calls `body` with each `T` row in `[from, to)`, in time order (or reversed).
    func scanRequests(_ range: TimeRange, reverse: Bool = false, _ body: (Int64, String, UnsafeRawBufferPointer) throws -> Bool) throws {
        let prefix = ViewKey.prefix(tenant, ViewKey.requestByTime)
        var lower = prefix, upper = prefix
        if let from = range.from { ViewKey.appendTime(from, to: &lower) }
        if let to = range.to { ViewKey.appendTime(to, to: &upper) } else { upper = ViewKey.end(of: prefix) }
        guard lower.lexicographicallyPrecedes(upper) else { return }
        let it = snapshot.makeIterator(lower: lower, upper: upper)
        if reverse { try it.seekToLast() } else { try it.seekToFirst() }
        while it.isValid {
            let (at, id) = RowKeys.timeAndID(it.key, after: prefix.count)
            guard try body(at, id, it.value) else { return }
            if reverse { try it.prev() } else { try it.next() }
        }
    }

    /// The day tallies in `[firstDay, lastDay]`, in order.
    func days(from firstDay: Int64? = nil, through lastDay: Int64? = nil, kind: UInt8 = ViewKey.day, _ body: (Int64, Tally) throws -> Bool) throws {
        let prefix = ViewKey.prefix(tenant, kind)
        var lower = prefix, upper = ViewKey.end(of: prefix)
        if let firstDay { ViewKey.appendDay(firstDay, to: &lower) }
        if let lastDay { upper = prefix; ViewKey.appendDay(lastDay + 1, to: &upper) }
        let it = snapshot.makeIterator(lower: lower, upper: upper)
        try it.seekToFirst()
        while it.isValid {
            let day = ViewKey.day(it.key, at: prefix.count)
            let tally: Tally
            do { tally = try Tally(decoding: it.value) } catch {
                throw ViewDamage(view: RecordsProjector.name, "the tally of day \(day) of tenant \(tenant) does not decode")
            }
            guard try body(day, tally) else { return }
            try it.next()
        }
    }

    // MARK: Dashboard

    /// The dashboard for `range`, with ageing measured at `now`. All time is read from the
    /// tallies; a range scans the requests of that range.
    public func dashboard(range: TimeRange, now: Int64) throws -> Dashboard {
        if range.from != nil || range.to != nil {
            var builder = DashboardBuilder<RequestKey, String>()
            try scanRequests(range) { at, id, value in
                let c: RequestColumns.Scan
                do { c = try RequestColumns.scan(value) } catch { throw ViewDamage(view: RecordsProjector.name, "the row of request \(id) of tenant \(tenant) does not decode") }
                builder.add(RequestKey(requestedAt: at, id: id), requestedAt: at, status: c.status, quantity: c.quantity, delivered: c.delivered,
                            completedAt: c.completedAt, customer: String(decoding: c.customer, as: UTF8.self),
                            product: String(decoding: c.product, as: UTF8.self))
                return true
            }
            return try builder.finish(now: now, row: { try summary($0.requestedAt, $0.id) }, party: { try party($0, isCustomer: $1) })
        }
        let t = try totals().tally
        var d = Dashboard()
        d.requests = Int(t.requests)
        for status in RecordStatus.allCases where t.count(status) > 0 { d.byStatus[status.rawValue] = Int(t.count(status)) }
        for state in DeliveryState.allCases where t.count(state) > 0 { d.byDeliveryState[state.rawValue] = Int(t.count(state)) }
        d.totalQuantity = t.totalQuantity
        d.deliveredQuantity = t.deliveredQuantity
        d.outstandingQuantity = t.outstandingQuantity
        d.averageProcessingHours = t.processingCount > 0
            ? (Double(t.processingSeconds) / Double(t.processingCount) / 3_600 * 1_000).rounded() / 1_000 : nil
        try days { day, tally in
            if tally.notDeleted > 0 { d.requestsPerDay[Dashboard.dayKey(day), default: 0] += Int(tally.notDeleted) }
            return true
        }
        try days(kind: ViewKey.completionDay) { day, tally in
            if tally.completed > 0 { d.completionsPerDay[Dashboard.dayKey(day), default: 0] += Int(tally.completed) }
            return true
        }
        let (overdueBefore, dueSoonBefore) = DashboardBuilder<RequestKey, String>.ageingBounds(now)
        let overdue = try pendingBefore(overdueBefore)
        d.overdue = overdue
        d.dueSoon = try pendingBefore(dueSoonBefore) - overdue
        d.oldestPending = try oldestPending(50)
        d.recentCompletions = try recentCompletions(10)
        d.topCustomers = try top(isCustomer: true)
        d.topProducts = try top(isCustomer: false)
        return d
    }

    /// Pending requests made before `t`: whole days from their tallies, the day of `t` itself
    /// from its requests.
    func pendingBefore(_ t: Int64) throws -> Int {
        let cutDay = ViewKey.day(of: t)
        var count: Int64 = 0
        try days(through: cutDay - 1) { _, tally in
            count += tally.pending
            return true
        }
        try scanRequests(TimeRange(from: cutDay * 86_400_000_000, to: t)) { _, _, value in
            if RequestColumns.peekStatus(value) == .pending { count += 1 }
            return true
        }
        return Int(count)
    }

    /// The `limit` oldest pending requests: the days whose tallies hold pending ones, then
    /// their requests in time order.
    func oldestPending(_ limit: Int) throws -> [RecordSummary] {
        var out: [RecordSummary] = []
        var pendingDays: [Int64] = []
        var found: Int64 = 0
        try days { day, tally in
            if tally.pending > 0 {
                pendingDays.append(day)
                found += tally.pending
            }
            return found < Int64(limit)
        }
        for day in pendingDays where out.count < limit {
            try scanRequests(TimeRange(from: day * 86_400_000_000, to: (day + 1) * 86_400_000_000)) { at, id, value in
                guard RequestColumns.peekStatus(value) == .pending else { return true }
                if let s = try summary(at, id, try RequestColumns(decoding: value)) { out.append(s) }
                return out.count < limit
            }
        }
        return out
    }

    /// The `limit` latest completions, ties of completion time by request time and id (as
    /// the dashboard orders them). Keys hold both times: the newest completion times are
    /// visited from the end, and within one time its first requests read forward — however
    /// many requests were completed at the same moment, at most `limit` rows are read.
    func recentCompletions(_ limit: Int) throws -> [RecordSummary] {
        let prefix = ViewKey.prefix(tenant, ViewKey.completion)
        let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
        var out: [RecordSummary] = []
        try it.seekToLast()
        while it.isValid && out.count < limit {
            guard it.key.count >= prefix.count + 16 else { throw ViewDamage(view: RecordsProjector.name, "a completion row of tenant \(tenant) is cut short") }
            let done = ViewKey.time(it.key, at: prefix.count)
            var group = prefix
            ViewKey.appendTime(done, to: &group)
            try it.seek(group)
            while it.isValid && out.count < limit, ViewKey.time(it.key, at: prefix.count) == done {
                let (at, id) = RowKeys.timeAndID(it.key, after: prefix.count + 8)
                if let s = try summary(at, id) { out.append(s) }
                try it.next()
            }
            try it.seekBefore(group)
        }
        return out
    }

    /// The 10 customers (or products) with the most outstanding quantity of pending
    /// requests (ties by id): the first ten rows of their ranking.
    func top(isCustomer: Bool) throws -> [Ranked] {
        let prefix = ViewKey.prefix(tenant, ViewKey.rank) + [isCustomer ? ViewKey.customerTally : ViewKey.productTally]
        let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
        var out: [Ranked] = []
        try it.seekToFirst()
        while it.isValid && out.count < 10 {
            guard it.key.count >= prefix.count + 8 else { throw ViewDamage(view: RecordsProjector.name, "a ranking row of tenant \(tenant) is cut short") }
            let outstanding = ~ViewKey.time(it.key, at: prefix.count)
            let p = try party(String(decoding: UnsafeRawBufferPointer(rebasing: it.key[(prefix.count + 8)...]), as: UTF8.self), isCustomer: isCustomer)
            out.append(Ranked(id: p.id, name: p.name, outstanding: outstanding))
            try it.next()
        }
        return out
    }

    /// Every customer's (or product's) tally.
    func groups(isCustomer: Bool, _ body: (String, GroupTally) throws -> Void) throws {
        let prefix = ViewKey.prefix(tenant, isCustomer ? ViewKey.customerTally : ViewKey.productTally)
        let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
        try it.seekToFirst()
        while it.isValid {
            let id = String(decoding: UnsafeRawBufferPointer(rebasing: it.key[prefix.count...]), as: UTF8.self)
            let g: GroupTally
            do { g = try GroupTally(decoding: it.value) } catch {
                throw ViewDamage(view: RecordsProjector.name, "the tally of \(isCustomer ? "customer" : "product") \(id) does not decode")
            }
            try body(id, g)
            try it.next()
        }
    }

    // MARK: Customer, product

    /// A customer's details, counts and requests (newest first).
    public func customer(_ id: String, limit: Int = 50) throws -> CustomerReport {
        guard let c = try customerRow(id) else { throw QueryError(description: "unknown customer \(id)") }
        var filter = RecordFilter()
        filter.customerId = id
        filter.limit = limit
        let page = try records(filter)
        let tally = try decode(RowKeys.customerTally(tenant, id)) { try GroupTally(decoding: $0) }?.tally ?? Tally()
        var counts: [String: Int] = [:]
        for status in RecordStatus.allCases where tally.count(status) > 0 { counts[status.rawValue] = Int(tally.count(status)) }
        return CustomerReport(id: c.id, number: c.number, name: c.name, region: c.region, city: c.city, removed: c.removed,
                              byStatus: counts, requests: page)
    }

    /// A product's backlog: outstanding per size and customers waiting — from the
    /// product's requests (its postings and their columns).
    public func product(_ id: String) throws -> ProductReport {
        guard let p = try productRow(id) else { throw QueryError(description: "unknown product \(id)") }
        var bySize: [String: Int64] = [:], waiting: [String: Int64] = [:]
        for key in try postings(ViewKey.productPosting, id, TimeRange()) {
            guard let c = try columns(key.requestedAt, key.id), c.status == .pending else { continue }
            bySize[c.size ?? "-", default: 0] += c.outstanding
            waiting[c.customerId, default: 0] += c.outstanding
        }
        let ranked = try waiting.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { customer, outstanding in
            Ranked(id: customer, name: try party(customer, isCustomer: true).name, outstanding: outstanding)
        }
        return ProductReport(id: p.id, sku: p.sku, name: p.name, sizes: p.sizes, removed: p.removed,
                             outstandingBySize: bySize, outstanding: bySize.values.reduce(0, +), customersWaiting: ranked)
    }

    // MARK: Insights

    /// Every product's distinct customers of requests not deleted, from the product postings
    /// (whose values name the customer and whether the request is deleted).
    func productCustomers() throws -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        for month in try months(TimeRange()) {
            let prefix = ViewKey.prefix(tenant, ViewKey.productPosting, month: month)
            let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
            try it.seekToFirst()
            while it.isValid {
                let rest = UnsafeRawBufferPointer(rebasing: it.key[prefix.count...])
                guard let zero = rest.firstIndex(of: 0), let flag = it.value.first else {
                    throw ViewDamage(view: RecordsProjector.name, "a product posting of tenant \(tenant) does not decode")
                }
                if flag == 0 {
                    let product = String(decoding: UnsafeRawBufferPointer(rebasing: rest[..<zero]), as: UTF8.self)
                    out[product, default: []].insert(String(decoding: UnsafeRawBufferPointer(rebasing: it.value[1...]), as: UTF8.self))
                }
                try it.next()
            }
        }
        return out
    }

    /// Insights grouped by region, product or customer. All time is read from the
    /// customers' and products' tallies; a range scans its requests.
    public func insights(by dimension: InsightDimension, range: TimeRange) throws -> [InsightRow] {
        struct Group { var count: Int64 = 0; var customers = Set<String>(); var distinct: Int64 = 0; var quantity: Int64 = 0; var last = Int64.min; var names: [String] = [] }
        var groups: [String: Group] = [:]
        var regions: [String: String] = [:]
        func region(_ customer: String) throws -> String {
            if let known = regions[customer] { return known }
            let r = try customerRow(customer)?.region ?? "(none)"
            regions[customer] = r
            return r
        }
        if range.from == nil && range.to == nil {
            try self.groups(isCustomer: dimension != .product) { id, g in
                guard g.tally.notDeleted > 0 else { return }
                let key = dimension == .region ? try region(id) : id
                var group = groups[key] ?? Group()
                group.count += g.tally.notDeleted
                group.quantity &+= g.tally.totalQuantity
                group.distinct += dimension == .product ? 0 : 1
                if g.lastAt > group.last { group.last = g.lastAt; group.names = [g.lastName] } else if g.lastAt == group.last { group.names.append(g.lastName) }
                groups[key] = group
            }
            if dimension == .product {
                for (product, customers) in try productCustomers() { groups[product]?.distinct = Int64(customers.count) }
            }
        } else {
            var newest: [String: [String]] = [:] // group → ids of its newest requests
            try scanRequests(range) { at, id, value in
                let c = try RequestColumns(decoding: value)
                guard c.status != .deleted else { return true }
                let key: String
                switch dimension {
                case .region: key = try region(c.customerId)
                case .product: key = c.productId
                case .customer: key = c.customerId
                }
                var g = groups[key] ?? Group()
                g.count += 1
                g.customers.insert(c.customerId)
                g.quantity &+= c.quantity
                if at > g.last { g.last = at; newest[key] = [id] } else if at == g.last { newest[key, default: []].append(id) }
                groups[key] = g
                return true
            }
            if dimension != .region {
                for (key, ids) in newest {
                    groups[key]?.names = try ids.compactMap { id in try details(id).map { dimension == .product ? $0.productName : $0.customerName } }
                }
            }
            for key in Array(groups.keys) {
                let distinct = Int64(groups[key]?.customers.count ?? 0)
                groups[key]?.distinct = distinct
            }
        }
        return groups.map { key, g in
            InsightRow(key: key, name: dimension == .region ? key : (g.names.max() ?? ""), requests: Int(g.count), customers: Int(g.distinct),
                       totalQuantity: g.quantity, averageQuantity: (Double(g.quantity) / Double(max(g.count, 1)) * 10).rounded() / 10,
                       lastRequest: Timestamp.format(g.last))
        }.sorted { ($0.requests, $1.key) > ($1.requests, $0.key) }
    }
}
