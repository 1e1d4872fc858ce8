/// A request's lifecycle state (domain.md, "Record state").
public enum RecordStatus: String, Sendable, Equatable, CaseIterable {
    /// Waiting for delivery (possibly partly delivered).
    case pending
    /// Delivered in full, or closed by hand.
    case completed
    /// Cancelled.
    case refunded
    /// Deleted; its history stays in the log.
    case deleted

    /// Completed, refunded and deleted records never change again.
    public var isTerminal: Bool { self != .pending }
}

/// What a request's stream says now: enough to decide whether an event is allowed.
public struct RecordState: Sendable, Equatable {
    /// The request's status.
    public var status: RecordStatus = .pending
    /// Requested quantity.
    public var quantity: Int64 = 0
    /// Sum of deliveries.
    public var delivered: Int64 = 0
    /// Who asked.
    public var customerId = ""
    /// What was asked for.
    public var productId = ""
    /// Which size, if any.
    public var size: String?

    /// Quantity still to deliver.
    public var remaining: Int64 { quantity - delivered }

    /// A request's state.
    public init(status: RecordStatus = .pending, quantity: Int64 = 0, delivered: Int64 = 0, customerId: String = "", productId: String = "", size: String? = nil) {
        self.status = status
        self.quantity = quantity
        self.delivered = delivered
        self.customerId = customerId
        self.productId = productId
        self.size = size
    }
}

/// A customer's stream state.
public struct CustomerState: Sendable, Equatable {
    /// The customer's name (kept by requests as it was).
    public var name = ""
    /// The region the insights group by.
    public var region: String?
    /// Removed customers take no new requests.
    public var removed = false

    /// A customer's state.
    public init(name: String = "", region: String? = nil, removed: Bool = false) {
        self.name = name
        self.region = region
        self.removed = removed
    }
}

/// A product's stream state.
public struct ProductState: Sendable, Equatable {
    /// The product's name.
    public var name = ""
    /// The sizes it comes in.
    public var sizes: [String] = []
    /// Removed products take no new requests.
    public var removed = false

    /// A product's state.
    public init(name: String = "", sizes: [String] = [], removed: Bool = false) {
        self.name = name
        self.sizes = sizes
        self.removed = removed
    }
}

/// The state of one stream, of whichever kind, or none.
public enum StreamState: Sendable, Equatable {
    /// The stream has no events.
    case none
    /// A request.
    case record(RecordState)
    /// A customer.
    case customer(CustomerState)
    /// A product.
    case product(ProductState)

    /// Applies an accepted (or stored) event. Events that do not fit the state are
    /// ignored here: the decider rejects them before they are stored.
    public func evolved(by type: EventType, _ data: EventData) -> StreamState {
        switch (self, type.kind) {
        case (.none, .outOfStockReported):
            return .record(RecordState(status: .pending, quantity: data.integer(.quantity) ?? 0, delivered: 0,
                                       customerId: data.string(.customerId) ?? "", productId: data.string(.productId) ?? "",
                                       size: data.string(.size)))
        case (.record(var r), .outOfStockAmended):
            if let q = data.integer(.quantity) { r.quantity = q }
            if let c = data.string(.customerId) { r.customerId = c }
            if let p = data.string(.productId) { r.productId = p }
            if let s = data.string(.size) { r.size = s }
            if r.status == .pending && r.quantity > 0 && r.delivered >= r.quantity { r.status = .completed }
            return .record(r)
        case (.record(var r), .deliveryRecorded):
            r.delivered = r.delivered.addingReportingOverflow(data.integer(.quantity) ?? 0).partialValue
            if r.delivered >= r.quantity { r.status = .completed }
            return .record(r)
        case (.record(var r), .outOfStockClosed):
            r.status = .completed
            return .record(r)
        case (.record(var r), .refundRecorded):
            r.status = .refunded
            return .record(r)
        case (.record(var r), .outOfStockDeleted):
            r.status = .deleted
            return .record(r)
        case (.none, .customerRegistered):
            return .customer(CustomerState(name: data.string(.name) ?? "", region: data.string(.region), removed: false))
        case (.customer(var c), .customerUpdated):
            if let n = data.string(.name) { c.name = n }
            if let r = data.string(.region) { c.region = r }
            return .customer(c)
        case (.customer(var c), .customerRemoved):
            c.removed = true
            return .customer(c)
        case (.none, .productRegistered):
            return .product(ProductState(name: data.string(.name) ?? "", sizes: data.strings(.sizes) ?? [], removed: false))
        case (.product(var p), .productUpdated):
            if let n = data.string(.name) { p.name = n }
            if let s = data.strings(.sizes) { p.sizes = s }
            return .product(p)
        case (.product(var p), .productRemoved):
            p.removed = true
            return .product(p)
        default:
            return self
        }
    }

    /// `evolved(by:_:)` for a stored event's type name; a type this build does not know
    /// changes nothing (its data was refused on read before it got here).
    public func evolved(by typeName: String, _ data: EventData) -> StreamState {
        guard let type = EventType(named: typeName) else { return self }
        return evolved(by: type, data)
    }
}

extension EventType {
    /// Streams are named by kind and id (`record/R-000123`, `customer/C-000042`,
    /// `product/P-000007`) so that a record and a customer can never share a stream.
    public func streamName(_ id: String) -> String {
        switch streamField {
        case .customerId: StreamName.customer(id)
        case .productId: StreamName.product(id)
        default: StreamName.record(id)
        }
    }
}

/// Stream names of each kind.
public enum StreamName {
    /// The prefixes of each kind's streams.
    public static let recordPrefix = "record/", customerPrefix = "customer/", productPrefix = "product/"

    /// The stream of a request.
    public static func record(_ id: String) -> String { recordPrefix + id }
    /// The stream of a customer.
    public static func customer(_ id: String) -> String { customerPrefix + id }
    /// The stream of a product.
    public static func product(_ id: String) -> String { productPrefix + id }

    /// The id in `stream` when it has `prefix` (one of the three above), else nil.
    public static func id(in stream: String, prefix: String) -> String? {
        stream.hasPrefix(prefix) ? String(stream.dropFirst(prefix.count)) : nil
    }
}

/// Where the ingestor may find a stream's state without reading the stream from the log:
/// a view that keeps each stream's state and the version it reflects. The ingestor uses an
/// answer only when its version is the store's, so a view that lags costs a log read, never
/// a wrong decision.
public protocol StreamStateLookup: AnyObject {
    /// The stream's state and the stream version it reflects, or nil when unknown.
    func state(tenant: String, stream: String) throws -> (version: Int64, state: StreamState)?
}
