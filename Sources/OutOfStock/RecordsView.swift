import EventStore
import Projections

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
    /// Offsets of the record's events in its partition, oldest first (its history).
    public var eventOffsets: [Int64]

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
}

/// One tenant's book: every request, customer and product in its current state.
public struct TenantBook: Sendable, Equatable {
    /// This page of them.
    public var records: [String: RecordRow] = [:]
    /// Distinct customers.
    public var customers: [String: CustomerRow] = [:]
    /// The products.
    public var products: [String: ProductRow] = [:]
}

/// The records view: every tenant's requests, customers and products, kept current from
/// the log. The dashboard, the records list, the customer, product and insight queries
/// are answered from it (never from the log).
public struct RecordsView: PartitionedProjector, Equatable {
    /// Its snapshot directory and `--view` name.
    public static let name = "records"
    /// Bumped when the state's meaning or encoding changes.
    public static let version = 1
    /// Every event type (customers, products and requests all matter).
    public static let eventTypes: Set<String> = []

    /// Books by tenant.
    public private(set) var tenants: [String: TenantBook] = [:]

    /// An empty view.
    public init() {}

    /// Applies one partition's events in order.
    public mutating func apply(_ events: [StoredEvent]) throws {
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
                eventOffsets: [event.position.offset])
        default:
            guard let id = data.string(.recordId) else { return }
            // Changed in place (no copy of the row and its strings per event).
            tenants[event.tenant]?.records[id]?.apply(event.type, data, at: at, actor: event.actor, offset: event.position.offset)
        }
    }

    /// Adds a view built from other partitions. Every key lives in one stream, so in one
    /// partition: requests in `record/…`, customers in `customer/…`, products in
    /// `product/…` (and names come with the events, never from other streams).
    public mutating func merge(_ other: RecordsView) throws {
        struct Overlap: Error, CustomStringConvertible {
            let description = "records view: two partitions hold the same key; the view cannot be rebuilt in parallel"
        }
        for (tenant, theirs) in other.tenants {
            guard var book = tenants[tenant] else { tenants[tenant] = theirs; continue }
            tenants[tenant] = nil // uniquely referenced while merging
            try book.records.merge(theirs.records) { _, _ in throw Overlap() }
            try book.customers.merge(theirs.customers) { _, _ in throw Overlap() }
            try book.products.merge(theirs.products) { _, _ in throw Overlap() }
            tenants[tenant] = book
        }
    }

    // MARK: Encoding (sorted keys: equal states give equal bytes)

    /// The state, with every dictionary sorted by key.
    public func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.int(Int64(tenants.count))
        for (tenant, book) in tenants.sorted(by: { $0.key < $1.key }) {
            w.string(tenant)
            w.int(Int64(book.customers.count))
            for (_, c) in book.customers.sorted(by: { $0.key < $1.key }) { c.encode(into: &w) }
            w.int(Int64(book.products.count))
            for (_, p) in book.products.sorted(by: { $0.key < $1.key }) { p.encode(into: &w) }
            w.int(Int64(book.records.count))
            for (_, r) in book.records.sorted(by: { $0.key < $1.key }) { r.encode(into: &w) }
        }
        return w.bytes
    }

    /// Restores a state from `encoded()`.
    public init(decoding bytes: [UInt8]) throws {
        var r = BinaryReader(bytes: bytes)
        let tenantCount = try r.count()
        for _ in 0..<tenantCount {
            let tenant = try r.string()
            var book = TenantBook()
            let customerCount = try r.count()
            book.customers.reserveCapacity(customerCount)
            for _ in 0..<customerCount {
                let c = try CustomerRow(from: &r)
                book.customers[c.id] = c
            }
            let productCount = try r.count()
            book.products.reserveCapacity(productCount)
            for _ in 0..<productCount {
                let p = try ProductRow(from: &r)
                book.products[p.id] = p
            }
            let recordCount = try r.count()
            book.records.reserveCapacity(recordCount)
            for _ in 0..<recordCount {
                let row = try RecordRow(from: &r)
                book.records[row.id] = row
            }
            tenants[tenant] = book
        }
        guard r.at == bytes.count else { throw BinaryReader.Truncated() }
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
        eventOffsets.append(offset)
    }
}

// One encoding per row type, shared by the view's snapshot and its query tables.

extension CustomerRow {
    func encode(into w: inout BinaryWriter) {
        w.string(id); w.string(number); w.string(name)
        w.optionalString(region); w.optionalString(city); w.optionalString(country); w.bool(removed)
    }

    init(from r: inout BinaryReader) throws {
        self.init(id: try r.string(), number: try r.string(), name: try r.string(),
                  region: try r.optionalString(), city: try r.optionalString(), country: try r.optionalString(), removed: try r.bool())
    }
}

extension ProductRow {
    func encode(into w: inout BinaryWriter) {
        w.string(id); w.string(sku); w.string(name); w.strings(sizes); w.bool(removed)
    }

    init(from r: inout BinaryReader) throws {
        self.init(id: try r.string(), sku: try r.string(), name: try r.string(), sizes: try r.strings(), removed: try r.bool())
    }
}

extension RecordRow {
    func encode(into w: inout BinaryWriter) {
        w.string(id); w.string(customerId); w.string(productId); w.optionalString(size)
        w.string(customerName); w.string(productName)
        w.int(quantity); w.int(delivered); w.int(Int64(status.index))
        w.int(requestedAt); w.int(completedAt ?? Int64.min)
        w.optionalString(notes); w.optionalString(reason)
        w.string(createdBy); w.string(updatedBy); w.int(updatedAt); w.int(Int64(deliveries))
        w.int(Int64(eventOffsets.count))
        for offset in eventOffsets { w.int(offset) }
    }

    init(from r: inout BinaryReader) throws {
        let id = try r.string(), customerId = try r.string(), productId = try r.string(), size = try r.optionalString()
        let customerName = try r.string(), productName = try r.string()
        let quantity = try r.int(), delivered = try r.int()
        guard let status = RecordStatus(index: try r.int()) else { throw BinaryReader.Truncated() }
        let requestedAt = try r.int(), completed = try r.int()
        self.init(
            id: id, customerId: customerId, productId: productId, size: size, customerName: customerName, productName: productName,
            quantity: quantity, delivered: delivered, status: status, requestedAt: requestedAt,
            completedAt: completed == Int64.min ? nil : completed, notes: try r.optionalString(), reason: try r.optionalString(),
            createdBy: try r.string(), updatedBy: try r.string(), updatedAt: try r.int(), deliveries: Int(try r.int()),
            eventOffsets: try (0..<(try r.count())).map { _ in try r.int() })
    }
}

extension RecordStatus {
    /// Its number in encoded state (the order of `allCases`).
    var index: Int { RecordStatus.allCases.firstIndex(of: self) ?? 0 }

    /// The status numbered `index`, or nil.
    init?(index: Int64) {
        guard index >= 0 && index < Int64(RecordStatus.allCases.count) else { return nil }
        self = RecordStatus.allCases[Int(index)]
    }
}
