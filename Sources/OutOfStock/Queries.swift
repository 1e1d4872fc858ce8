/// A time range of business time (µs since the epoch); nil bounds are open.
public struct TimeRange: Sendable, Equatable {
    /// Inclusive start.
    public var from: Int64?
    /// Exclusive end.
    public var to: Int64?

    /// A range.
    public init(from: Int64? = nil, to: Int64? = nil) {
        self.from = from
        self.to = to
    }

    /// Whether `t` lies in the range.
    public func contains(_ t: Int64) -> Bool { (from.map { t >= $0 } ?? true) && (to.map { t < $0 } ?? true) }
}

/// A request in a list.
public struct RecordSummary: Sendable, Equatable, Encodable {
    public let id: String
    public let customerId: String
    public let customerName: String
    public let productId: String
    public let productName: String
    public let size: String?
    public let quantity: Int64
    public let delivered: Int64
    public let status: String
    public let requestedAt: String
    public let completedAt: String?

    /// The summary of a row.
    public static func from(_ r: RecordRow) -> RecordSummary { RecordSummary(r) }

    init(_ r: RecordRow) {
        id = r.id; customerId = r.customerId; customerName = r.customerName; productId = r.productId; productName = r.productName
        size = r.size; quantity = r.quantity; delivered = r.delivered; status = r.status.rawValue
        requestedAt = Timestamp.format(r.requestedAt); completedAt = r.completedAt.map(Timestamp.format)
    }
}

/// An entry of a ranking.
public struct Ranked: Sendable, Equatable, Encodable {
    public let id: String
    public let name: String
    public let outstanding: Int64
}

/// The dashboard of domain.md, for one tenant and time range.
public struct Dashboard: Sendable, Equatable, Encodable {
    public var requests = 0
    public var byStatus: [String: Int] = [:]
    public var byDeliveryState: [String: Int] = [:]
    public var totalQuantity: Int64 = 0
    public var deliveredQuantity: Int64 = 0
    public var outstandingQuantity: Int64 = 0
    public var dueSoon = 0
    public var overdue = 0
    public var averageProcessingHours: Double?
    public var oldestPending: [RecordSummary] = []
    public var recentCompletions: [RecordSummary] = []
    public var topCustomers: [Ranked] = []
    public var topProducts: [Ranked] = []
    public var requestsPerDay: [String: Int] = [:]
}

/// One page of the records list.
public struct RecordPage: Sendable, Equatable, Encodable {
    public let total: Int
    public let records: [RecordSummary]
    /// Pass as `cursor` for the next page; nil on the last page.
    public let nextCursor: String?
}

/// The filters of the records list.
public struct RecordFilter: Sendable {
    public var customerId: String?
    public var productId: String?
    public var status: RecordStatus?
    public var deliveryState: DeliveryState?
    public var range = TimeRange()
    /// Words that must all prefix-match a word of the customer name, product name or notes.
    public var search: String?
    public var newestFirst = true
    public var limit = 50
    public var cursor: String?

    public init() {}
}

/// Query errors: unknown ids, bad cursors.
public struct QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public let description: String

    /// An error with its message.
    public init(description: String) { self.description = description }
}

/// The queries of domain.md, answered from a tenant's book.
extension TenantBook {
    static let day: Int64 = 86_400_000_000

    /// The dashboard for `range`, with ageing measured at `now`.
    public func dashboard(range: TimeRange, now: Int64) -> Dashboard {
        var d = Dashboard()
        // Summed as integer hours-and-microseconds pairs would overflow for absurd times;
        // whole seconds in a Double are exact far beyond any real total and independent of
        // the order of the records.
        var processing: (seconds: Double, count: Int) = (0, 0)
        // Keys only (time, id): the rows are looked up for the few that are shown.
        var pending: [(Int64, String)] = [], completed: [(Int64, String)] = []
        var customers: [String: Int64] = [:], products: [String: Int64] = [:], perDay: [Int64: Int] = [:]
        for r in records.values where range.contains(r.requestedAt) {
            d.requests += 1
            d.byStatus[r.status.rawValue, default: 0] += 1
            guard r.status != .deleted else { continue }
            d.byDeliveryState[r.deliveryState.rawValue, default: 0] += 1
            d.totalQuantity += r.quantity
            d.deliveredQuantity += r.delivered
            d.outstandingQuantity += r.outstanding
            perDay[r.requestedAt >= 0 ? r.requestedAt / Self.day : r.requestedAt / Self.day - 1, default: 0] += 1
            if r.status == .pending {
                pending.append((r.requestedAt, r.id))
                let age = now.subtractingReportingOverflow(r.requestedAt).partialValue
                if age > 14 * Self.day { d.overdue += 1 } else if age > 7 * Self.day { d.dueSoon += 1 }
                customers[r.customerId, default: 0] += r.outstanding
                products[r.productId, default: 0] += r.outstanding
            } else if r.status == .completed, let done = r.completedAt {
                completed.append((done, r.id))
                processing.seconds += Double(done / 1_000_000) - Double(r.requestedAt / 1_000_000)
                processing.count += 1
            }
        }
        d.averageProcessingHours = processing.count > 0 ? (processing.seconds / Double(processing.count) / 3_600 * 1_000).rounded() / 1_000 : nil
        d.requestsPerDay = Dictionary(perDay.map { (String(Timestamp.format($0.key &* Self.day).prefix(10)), $0.value) }, uniquingKeysWith: +)
        d.oldestPending = Self.first(50, of: pending, by: <).compactMap { records[$0.1].map(RecordSummary.init) }
        d.recentCompletions = Self.first(10, of: completed, by: >).compactMap { records[$0.1].map(RecordSummary.init) }
        d.topCustomers = customers.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map {
            Ranked(id: $0.key, name: self.customers[$0.key]?.name ?? $0.key, outstanding: $0.value)
        }
        d.topProducts = products.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map {
            Ranked(id: $0.key, name: self.products[$0.key]?.name ?? $0.key, outstanding: $0.value)
        }
        return d
    }

    /// The first `k` keys in the given order (ties by id), without sorting them all.
    private static func first(_ k: Int, of keys: [(Int64, String)], by order: (Int64, Int64) -> Bool) -> [(Int64, String)] {
        func before(_ a: (Int64, String), _ b: (Int64, String)) -> Bool { a.0 == b.0 ? a.1 < b.1 : order(a.0, b.0) }
        var best: [(Int64, String)] = []
        best.reserveCapacity(k + 1)
        for key in keys {
            if best.count == k, let last = best.last, !before(key, last) { continue }
            let at = best.firstIndex { before(key, $0) } ?? best.count
            best.insert(key, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    /// A page of the records list.
    public func records(_ filter: RecordFilter) throws -> RecordPage {
        let words = (filter.search ?? "").lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
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
        return RecordPage(total: matches.count, records: page.map(RecordSummary.init), nextCursor: next)
    }

    private static func matches(_ r: RecordRow, _ words: [String]) -> Bool {
        let haystack = (r.customerName + " " + r.productName + " " + (r.notes ?? "")).lowercased()
            .split(whereSeparator: { !$0.isLetter && !$0.isNumber })
        return words.allSatisfy { word in haystack.contains { $0.hasPrefix(word) } }
    }

    /// A customer's details, counts and requests (newest first).
    public func customer(_ id: String, limit: Int = 50) throws -> CustomerReport {
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
    public func product(_ id: String) throws -> ProductReport {
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
    public func insights(by dimension: InsightDimension, range: TimeRange) -> [InsightRow] {
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

/// What the customer query answers.
public struct CustomerReport: Sendable, Equatable, Encodable {
    public let id: String, number: String, name: String
    public let region: String?, city: String?
    public let removed: Bool
    public let byStatus: [String: Int]
    public let requests: RecordPage
}

/// What the product query answers.
public struct ProductReport: Sendable, Equatable, Encodable {
    public let id: String, sku: String, name: String
    public let sizes: [String]
    public let removed: Bool
    public let outstandingBySize: [String: Int64]
    public let outstanding: Int64
    public let customersWaiting: [Ranked]
}

/// How insights are grouped.
public enum InsightDimension: String, Sendable, CaseIterable {
    case region, product, customer
}

/// One group of the insights.
public struct InsightRow: Sendable, Equatable, Encodable {
    public let key: String, name: String
    public let requests: Int, customers: Int
    public let totalQuantity: Int64
    public let averageQuantity: Double
    public let lastRequest: String
}
