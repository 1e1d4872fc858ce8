import OutOfStock

/// One request as the views show it (domain.md, "Record state").
public struct RecordRow: Sendable, Equatable {
    /// The id.
    public var id: String
    /// The customer who asked.
    public var customerId: String
    /// The product asked for.
    public var productId: String
    /// The size, if any.
    public var size: String?
    /// The customer's and product's names when the request was made (or later amended).
    public var customerName: String
    /// The product's name (as it was when recorded).
    public var productName: String
    /// Requested quantity.
    public var quantity: Int64
    /// Quantity delivered so far.
    public var delivered: Int64
    /// pending, completed, refunded or deleted.
    public var status: RecordStatus
    /// When it was requested (business time).
    public var requestedAt: Int64
    /// When it was completed or refunded, if it was.
    public var completedAt: Int64?
    /// Free-text notes.
    public var notes: String?
    /// Why it was closed, refunded or deleted.
    public var reason: String?
    /// Who reported it.
    public var createdBy: String
    /// Who changed it last.
    public var updatedBy: String
    /// When it was changed last (business time).
    public var updatedAt: Int64
    /// Number of deliveries.
    public var deliveries: Int
    /// The lane offset of the request's newest event: its history is read back from there
    /// through each event's link to the previous one.
    public var head: Int64

    /// A row.
    public init(id: String, customerId: String, productId: String, size: String?, customerName: String, productName: String, quantity: Int64,
                delivered: Int64, status: RecordStatus, requestedAt: Int64, completedAt: Int64?, notes: String?, reason: String?, createdBy: String,
                updatedBy: String, updatedAt: Int64, deliveries: Int, head: Int64) {
        self.id = id; self.customerId = customerId; self.productId = productId; self.size = size; self.customerName = customerName
        self.productName = productName; self.quantity = quantity; self.delivered = delivered; self.status = status
        self.requestedAt = requestedAt; self.completedAt = completedAt; self.notes = notes; self.reason = reason; self.createdBy = createdBy
        self.updatedBy = updatedBy; self.updatedAt = updatedAt; self.deliveries = deliveries; self.head = head
    }

    /// Quantity still to deliver (0 once the record is done).
    public var outstanding: Int64 { status == .pending ? quantity - delivered : 0 }

    /// needs delivery / partial / done (domain.md).
    public var deliveryState: DeliveryState { DeliveryState(status: status, delivered: delivered) }
}

/// The derived delivery state of a request.
public enum DeliveryState: String, Sendable, CaseIterable {
    case needsDelivery = "needs-delivery", partial, done

    /// The state of a request with this status and delivered quantity.
    public init(status: RecordStatus, delivered: Int64) {
        self = status != .pending ? .done : delivered == 0 ? .needsDelivery : .partial
    }
}

/// A customer as the views show it.
public struct CustomerRow: Sendable, Equatable {
    /// The id.
    public var id: String
    /// The customer number.
    public var number: String
    /// The name.
    public var name: String
    /// The region.
    public var region: String?
    /// The city.
    public var city: String?
    /// The country.
    public var country: String?
    /// Whether it was removed.
    public var removed: Bool

    /// A row.
    public init(id: String, number: String, name: String, region: String?, city: String?, country: String?, removed: Bool) {
        self.id = id; self.number = number; self.name = name; self.region = region; self.city = city; self.country = country; self.removed = removed
    }
}

/// A product as the views show it.
public struct ProductRow: Sendable, Equatable {
    /// The id.
    public var id: String
    /// The stock-keeping unit.
    public var sku: String
    /// The name.
    public var name: String
    /// The sizes it comes in.
    public var sizes: [String]
    /// Whether it was removed.
    public var removed: Bool

    /// A row.
    public init(id: String, sku: String, name: String, sizes: [String], removed: Bool) {
        self.id = id; self.sku = sku; self.name = name; self.sizes = sizes; self.removed = removed
    }
}

