import EventStore
import OutOfStock
@testable import RecordsView

// The reference: the records view as it was before it moved into a key-value store —
// every tenant's book folded in memory, and the queries answered by scanning it. The
// tests hold the key-value view's every answer against it.

/// One tenant's book: every request, customer and product in its current state.
struct TenantBook: Sendable, Equatable {
    /// This page of them.
    var records: [String: RecordRow] = [:]
    /// Distinct customers.
    var customers: [String: CustomerRow] = [:]
    /// The products.
    var products: [String: ProductRow] = [:]
}

/// The records view: every tenant's requests, customers and products, kept current from
/// the log. The dashboard, the records list, the customer, product and insight queries
/// are answered from it (never from the log).
struct ReferenceView: Equatable {
    /// Books by tenant.
    private(set) var tenants: [String: TenantBook] = [:]

    /// An empty view.
    init() {}

    /// Applies one partition's events in order.
    mutating func apply(_ events: [StoredEvent]) throws {
        // Decode the whole batch first: a bad event leaves the view unchanged.
        let decoded = try events.map { try EventData.decode($0.data, type: $0.type, schemaVersion: $0.schemaVersion) }
        for (event, data) in zip(events, decoded) { apply(event, data) }
    }

    private mutating func apply(_ event: StoredEvent, _ data: EventData) {
        let at = event.businessTime
        switch event.type {
        case "CustomerRegistered", "CustomerUpdated", "CustomerRemoved":
            guard let id = data.string(.customerId) else { return }
            var c = tenants[event.tenant, default: TenantBook()].customers[id]
                ?? CustomerRow(id: id, number: "", name: "", region: nil, city: nil, country: nil, removed: false)
            if let v = data.string(.number) { c.number = v }
            if let v = data.string(.name) { c.name = v }
            if let v = data.string(.region) { c.region = v }
            if let v = data.string(.city) { c.city = v }
            if let v = data.string(.country) { c.country = v }
            if event.type == "CustomerRemoved" { c.removed = true }
            tenants[event.tenant, default: TenantBook()].customers[id] = c
        case "ProductRegistered", "ProductUpdated", "ProductRemoved":
            guard let id = data.string(.productId) else { return }
            var p = tenants[event.tenant, default: TenantBook()].products[id] ?? ProductRow(id: id, sku: "", name: "", sizes: [], removed: false)
            if let v = data.string(.sku) { p.sku = v }
            if let v = data.string(.name) { p.name = v }
            if let v = data.strings(.sizes) { p.sizes = v }
            if event.type == "ProductRemoved" { p.removed = true }
            tenants[event.tenant, default: TenantBook()].products[id] = p
        case "OutOfStockReported":
            guard let id = data.string(.recordId), let customerId = data.string(.customerId), let productId = data.string(.productId) else { return }
            // The names come with the event (schema version 2); a version-1 event shows ids.
            // Never looked up in other streams: the view must not depend on the order in
            // which partitions are applied.
            let customerName = data.string(.customerName) ?? customerId
            let productName = data.string(.productName) ?? productId
            tenants[event.tenant, default: TenantBook()].records[id] = RecordRow(
                id: id, customerId: customerId, productId: productId, size: data.string(.size),
                customerName: customerName, productName: productName,
                quantity: data.integer(.quantity) ?? 0, delivered: 0, status: .pending, requestedAt: at, completedAt: nil,
                notes: data.string(.notes), reason: nil, createdBy: event.actor, updatedBy: event.actor, updatedAt: at, deliveries: 0,
                head: event.position.offset)
        default:
            guard let id = data.string(.recordId) else { return }
            // Changed in place (no copy of the row and its strings per event).
            tenants[event.tenant]?.records[id]?.apply(event.type, data, at: at, actor: event.actor, offset: event.position.offset)
        }
    }

}

extension RecordRow {
    /// Applies a change to an existing request (not `OutOfStockReported`, which creates it).
    mutating func apply(_ type: String, _ data: EventData, at: Int64, actor: String, offset: Int64) {
        switch type {
        case "OutOfStockAmended":
            if let q = data.integer(.quantity) { quantity = q }
            if let n = data.string(.notes) { notes = n }
            if let s = data.string(.size) { size = s }
            if let c = data.string(.customerId) { customerId = c; customerName = data.string(.customerName) ?? c }
            if let p = data.string(.productId) { productId = p; productName = data.string(.productName) ?? p }
            if status == .pending && delivered >= quantity { status = .completed; completedAt = at }
        case "DeliveryRecorded":
            delivered = delivered.addingReportingOverflow(data.integer(.quantity) ?? 0).partialValue
            deliveries += 1
            if delivered >= quantity { status = .completed; completedAt = at }
        case "OutOfStockClosed":
            status = .completed
            completedAt = at
            reason = data.string(.reason)
        case "RefundRecorded":
            status = .refunded
            completedAt = at
            reason = data.string(.reason)
        case "OutOfStockDeleted":
            status = .deleted
            reason = data.string(.reason) ?? reason
        default:
            return
        }
        updatedBy = actor
        updatedAt = at
        head = offset
    }
}


/// The queries of domain.md, answered from a tenant's book.
extension TenantBook {
    /// The dashboard for `range`, with ageing measured at `now`.
    func dashboard(range: TimeRange, now: Int64) -> Dashboard {
        var builder = DashboardBuilder<RequestKey, String>()
        for r in records.values where range.contains(r.requestedAt) {
            builder.add(RequestKey(requestedAt: r.requestedAt, id: r.id), requestedAt: r.requestedAt, status: r.status, quantity: r.quantity,
                        delivered: r.delivered, completedAt: r.completedAt, customer: r.customerId, product: r.productId)
        }
        return builder.finish(now: now, row: { key in records[key.id].map { RecordSummary($0) } }) { key, isCustomer in
            (key, (isCustomer ? customers[key]?.name : products[key]?.name) ?? key)
        }
    }

    /// A page of the records list.
    func records(_ filter: RecordFilter) throws -> RecordPage {
        let words = SearchText.words(filter.search ?? "")
        var matches = records.values.filter { r in
            (filter.customerId.map { r.customerId == $0 } ?? true) && (filter.productId.map { r.productId == $0 } ?? true)
                && (filter.status.map { r.status == $0 } ?? true) && (filter.deliveryState.map { r.deliveryState == $0 } ?? true)
                && filter.range.contains(r.requestedAt) && (words.isEmpty || Self.matches(r, words))
        }
        matches.sort { filter.newestFirst ? ($0.requestedAt, $0.id) > ($1.requestedAt, $1.id) : ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
        var start = 0
        if let cursor = filter.cursor {
            let parts = cursor.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { throw QueryError(description: "bad cursor \"\(cursor)\": use the nextCursor of a previous page") }
            let id = String(parts[1])
            start = matches.firstIndex { filter.newestFirst ? ($0.requestedAt, $0.id) < (t, id) : ($0.requestedAt, $0.id) > (t, id) } ?? matches.count
        }
        let limit = max(1, min(filter.limit, 1_000))
        let page = matches[start..<min(start + limit, matches.count)]
        let next = start + limit < matches.count ? page.last.map { "\($0.requestedAt):\($0.id)" } : nil
        return RecordPage(total: matches.count, records: page.map { RecordSummary($0) }, nextCursor: next)
    }

    private static func matches(_ r: RecordRow, _ words: [String]) -> Bool {
        let haystack = SearchText.words(of: r)
        return words.allSatisfy { word in haystack.contains { $0.hasPrefix(word) } }
    }

    /// A customer's details, counts and requests (newest first).
    func customer(_ id: String, limit: Int = 50) throws -> CustomerReport {
        guard let c = customers[id] else { throw QueryError(description: "unknown customer \(id)") }
        var filter = RecordFilter()
        filter.customerId = id
        filter.limit = limit
        let page = try records(filter)
        var counts: [String: Int] = [:]
        for r in records.values where r.customerId == id { counts[r.status.rawValue, default: 0] += 1 }
        return CustomerReport(id: c.id, number: c.number, name: c.name, region: c.region, city: c.city, removed: c.removed,
                              byStatus: counts, requests: page)
    }

    /// A product's backlog: outstanding per size and customers waiting.
    func product(_ id: String) throws -> ProductReport {
        guard let p = products[id] else { throw QueryError(description: "unknown product \(id)") }
        var bySize: [String: Int64] = [:], waiting: [String: Int64] = [:]
        for r in records.values where r.productId == id && r.status == .pending {
            bySize[r.size ?? "-", default: 0] += r.outstanding
            waiting[r.customerId, default: 0] += r.outstanding
        }
        return ProductReport(id: p.id, sku: p.sku, name: p.name, sizes: p.sizes, removed: p.removed,
                             outstandingBySize: bySize, outstanding: bySize.values.reduce(0, +),
                             customersWaiting: waiting.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map {
                                 Ranked(id: $0.key, name: customers[$0.key]?.name ?? $0.key, outstanding: $0.value)
                             })
    }

    /// Insights grouped by region, product or customer.
    func insights(by dimension: InsightDimension, range: TimeRange) -> [InsightRow] {
        struct Accumulator { var count = 0; var customers = Set<String>(); var quantity: Int64 = 0; var last: Int64 = .min; var name = "" }
        var groups: [String: Accumulator] = [:]
        for r in records.values where range.contains(r.requestedAt) && r.status != .deleted {
            let key: String, name: String
            switch dimension {
            case .region: key = customers[r.customerId]?.region ?? "(none)"; name = key
            case .product: key = r.productId; name = r.productName
            case .customer: key = r.customerId; name = r.customerName
            }
            var a = groups[key] ?? Accumulator()
            a.count += 1
            a.customers.insert(r.customerId)
            a.quantity += r.quantity
            if (r.requestedAt, name) >= (a.last, a.name) { a.name = name; a.last = r.requestedAt } // the newest request's name
            groups[key] = a
        }
        return groups.map { key, a in
            InsightRow(key: key, name: a.name, requests: a.count, customers: a.customers.count, totalQuantity: a.quantity,
                       averageQuantity: (Double(a.quantity) / Double(max(a.count, 1)) * 10).rounded() / 10, lastRequest: Timestamp.format(a.last))
        }.sorted { ($0.requests, $1.key) > ($1.requests, $0.key) }
    }
}

