import OutOfStock

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
    /// The id.
    public let id: String
    /// The customer who asked.
    public let customerId: String
    /// The customer's name (as it was when recorded).
    public let customerName: String
    /// The product asked for.
    public let productId: String
    /// The product's name (as it was when recorded).
    public let productName: String
    /// The size, if any.
    public let size: String?
    /// Requested quantity.
    public let quantity: Int64
    /// Quantity delivered so far.
    public let delivered: Int64
    /// pending, completed, refunded or deleted.
    public let status: String
    /// When it was requested (business time).
    public let requestedAt: String
    /// When it was completed or refunded, if it was.
    public let completedAt: String?

    /// The summary of a row.
    public init(_ r: RecordRow) {
        id = r.id; customerId = r.customerId; customerName = r.customerName; productId = r.productId; productName = r.productName
        size = r.size; quantity = r.quantity; delivered = r.delivered; status = r.status.rawValue
        requestedAt = Timestamp.format(r.requestedAt); completedAt = r.completedAt.map(Timestamp.format)
    }
}

/// An entry of a ranking.
public struct Ranked: Sendable, Equatable, Encodable {
    /// The id.
    public let id: String
    /// The name.
    public let name: String
    /// Quantity still to deliver.
    public let outstanding: Int64
}

/// The dashboard of domain.md, for one tenant and time range.
public struct Dashboard: Sendable, Equatable, Encodable {
    /// Requests counted.
    public var requests = 0
    /// Requests by status.
    public var byStatus: [String: Int] = [:]
    /// Requests (not deleted) by delivery state.
    public var byDeliveryState: [String: Int] = [:]
    /// Requested quantity, summed.
    public var totalQuantity: Int64 = 0
    /// Delivered quantity, summed.
    public var deliveredQuantity: Int64 = 0
    /// Quantity still to deliver, summed.
    public var outstandingQuantity: Int64 = 0
    /// Pending requests older than 7 days (up to 14).
    public var dueSoon = 0
    /// Pending requests older than 14 days.
    public var overdue = 0
    /// Average time from request to completion, in hours (nil: no completions).
    public var averageProcessingHours: Double?
    /// The 50 oldest pending requests.
    public var oldestPending: [RecordSummary] = []
    /// The 10 most recent completions.
    public var recentCompletions: [RecordSummary] = []
    /// Customers with the most outstanding quantity (10).
    public var topCustomers: [Ranked] = []
    /// Products with the most outstanding quantity (10).
    public var topProducts: [Ranked] = []
    /// Requests per day (YYYY-MM-DD, UTC), deleted ones left out.
    public var requestsPerDay: [String: Int] = [:]
    /// Completed requests per day of their completion (YYYY-MM-DD, UTC); with a time range,
    /// those of the requests made in it.
    public var completionsPerDay: [String: Int] = [:]

    /// The key of a day (days since 1970-01-01, UTC) in `requestsPerDay` and
    /// `completionsPerDay`: YYYY-MM-DD.
    static func dayKey(_ day: Int64) -> String { String(Timestamp.format(day &* 86_400_000_000).prefix(10)) }
}

/// One page of the records list.
public struct RecordPage: Sendable, Equatable, Encodable {
    /// All matching requests.
    public let total: Int
    /// This page of them.
    public let records: [RecordSummary]
    /// Pass as `cursor` for the next page; nil on the last page.
    public let nextCursor: String?
}

/// The filters of the records list.
public struct RecordFilter: Sendable {
    /// Only this customer's requests.
    public var customerId: String?
    /// Only this product's requests.
    public var productId: String?
    /// Only requests with this status.
    public var status: RecordStatus?
    /// Only requests in this delivery state.
    public var deliveryState: DeliveryState?
    /// Only requests made in this range.
    public var range = TimeRange()
    /// Words that must all prefix-match a word of the customer name, product name or notes.
    public var search: String?
    /// Newest (true) or oldest (false) first.
    public var newestFirst = true
    /// Page size, 1 to 1,000.
    public var limit = 50
    /// The `nextCursor` of the previous page.
    public var cursor: String?

    /// No filter: every request, newest first, 50 a page.
    public init() {}
}

/// Query errors: unknown ids, bad cursors.
public struct QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public let description: String

    /// An error with its message.
    public init(description: String) { self.description = description }
}

/// A request's place in the order of the records list and of a query table's ordinals:
/// requested time, then id. Ties of the dashboard's rankings are broken by it.
public struct RequestKey: Comparable, Sendable {
    public init(requestedAt: Int64, id: String) {
        self.requestedAt = requestedAt
        self.id = id
    }

    public let requestedAt: Int64
    public let id: String

    public static func < (a: RequestKey, b: RequestKey) -> Bool { (a.requestedAt, a.id) < (b.requestedAt, b.id) }
}

/// What the customer query answers.
public struct CustomerReport: Sendable, Equatable, Encodable {
    /// The id.
    public let id: String
    /// The customer number.
    public let number: String
    /// The name.
    public let name: String
    /// The region.
    public let region: String?
    /// The city.
    public let city: String?
    /// Whether it was removed.
    public let removed: Bool
    /// Requests by status.
    public let byStatus: [String: Int]
    /// Requests counted.
    public let requests: RecordPage
}

/// What the product query answers.
public struct ProductReport: Sendable, Equatable, Encodable {
    /// The id.
    public let id: String
    /// The stock-keeping unit.
    public let sku: String
    /// The name.
    public let name: String
    /// The sizes it comes in.
    public let sizes: [String]
    /// Whether it was removed.
    public let removed: Bool
    /// Outstanding quantity per size ("-": no size).
    public let outstandingBySize: [String: Int64]
    /// Quantity still to deliver.
    public let outstanding: Int64
    /// Customers waiting, most outstanding first.
    public let customersWaiting: [Ranked]
}

/// How insights are grouped.
public enum InsightDimension: String, Sendable, CaseIterable {
    case region, product, customer
}

/// One group of the insights.
public struct InsightRow: Sendable, Equatable, Encodable {
    /// The group: region, product id or customer id.
    public let key: String
    /// The name.
    public let name: String
    /// Requests counted.
    public let requests: Int
    /// Distinct customers.
    public let customers: Int
    /// Requested quantity, summed.
    public let totalQuantity: Int64
    /// Average requested quantity.
    public let averageQuantity: Double
    /// When the last request was made.
    public let lastRequest: String
}
