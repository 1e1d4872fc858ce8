import EventLog
import OutOfStock

/// The columns of a request that change with its events, stored under its time
/// (`T` time id): what the dashboards, lists and aggregates read, kept small because
/// range queries scan them.
struct RequestColumns: Equatable, RowEncoding {
    var status: RecordStatus
    var quantity: Int64
    var delivered: Int64
    var completedAt: Int64?
    var updatedAt: Int64
    var updatedBy: String
    var deliveries: Int
    var customerId: String
    var productId: String
    var size: String?
    /// The lane offset of the request's newest event (its history is read back from there),
    /// and its version in the request's stream.
    var head: Int64
    var version: Int64

    var outstanding: Int64 { status == .pending ? quantity &- delivered : 0 }
    var deliveryState: DeliveryState { DeliveryState(status: status, delivered: delivered) }

    func encode(into out: inout [UInt8]) {
        var w = RowWriter(taking: out)
        defer { out = w.take() }
        w.byte(UInt8(status.index) | (completedAt == nil ? 0 : 0x10) | (size == nil ? 0 : 0x20))
        w.int(quantity)
        w.int(delivered)
        if let completedAt { w.int(completedAt) }
        w.int(updatedAt)
        w.int(Int64(deliveries))
        w.int(head)
        w.int(version)
        w.text(customerId)
        w.text(productId)
        if let size { w.text(size) }
        w.text(updatedBy)
    }

    init(status: RecordStatus, quantity: Int64, delivered: Int64, completedAt: Int64?, updatedAt: Int64, updatedBy: String, deliveries: Int,
         customerId: String, productId: String, size: String?, head: Int64, version: Int64) {
        self.status = status
        self.quantity = quantity
        self.delivered = delivered
        self.completedAt = completedAt
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
        self.deliveries = deliveries
        self.customerId = customerId
        self.productId = productId
        self.size = size
        self.head = head
        self.version = version
    }

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        let flags = try r.byte()
        guard let status = RecordStatus(index: Int64(flags & 0x0F)) else { throw RowDamage() }
        self.status = status
        quantity = try r.int()
        delivered = try r.int()
        completedAt = flags & 0x10 != 0 ? try r.int() : nil
        updatedAt = try r.int()
        deliveries = Int(try r.int())
        head = try r.int()
        version = try r.int()
        customerId = try r.text()
        productId = try r.text()
        size = flags & 0x20 != 0 ? try r.text() : nil
        updatedBy = try r.text()
        guard r.isAtEnd else { throw RowDamage() }
    }

    /// What a dashboard needs of a `T` row, read without making strings of its text.
    struct Scan {
        var status: RecordStatus
        var quantity: Int64
        var delivered: Int64
        var completedAt: Int64?
        var customer: UnsafeRawBufferPointer
        var product: UnsafeRawBufferPointer
    }

    static func scan(_ bytes: UnsafeRawBufferPointer) throws -> Scan {
        var r = ByteReader(bytes: bytes)
        guard let flags = r.byte(), let status = RecordStatus(index: Int64(flags & 0x0F)), let q = r.varint(), let d = r.varint() else { throw RowDamage() }
        var completed: UInt64?
        if flags & 0x10 != 0 {
            guard let c = r.varint() else { throw RowDamage() }
            completed = c
        }
        // updated at, deliveries, head, version
        guard r.varint() != nil, r.varint() != nil, r.varint() != nil, r.varint() != nil, let customer = text(&r), let product = text(&r) else { throw RowDamage() }
        return Scan(status: status, quantity: ByteCoding.unZigZag(q), delivered: ByteCoding.unZigZag(d), completedAt: completed.map(ByteCoding.unZigZag),
                    customer: customer, product: product)
    }

    private static func text(_ r: inout ByteReader) -> UnsafeRawBufferPointer? {
        guard let n = r.varint(), n <= UInt64(r.bytes.count - r.position) else { return nil }
        defer { r.position += Int(n) }
        return UnsafeRawBufferPointer(rebasing: r.bytes[r.position..<(r.position + Int(n))])
    }

    /// Only the fields a scan of `T` rows needs most often, without allocating strings.
    static func peekStatus(_ bytes: UnsafeRawBufferPointer) -> RecordStatus? {
        guard let first = bytes.first else { return nil }
        return RecordStatus(index: Int64(first & 0x0F))
    }
}

/// The details of a request that rarely change, stored under its id (`R` id): its time
/// (to find its columns), the names it was recorded with, notes and reason.
struct RequestDetails: Equatable, RowEncoding {
    var requestedAt: Int64
    var customerName: String
    var productName: String
    var notes: String?
    var reason: String?
    var createdBy: String

    func encode(into out: inout [UInt8]) {
        var w = RowWriter(taking: out)
        defer { out = w.take() }
        w.int(requestedAt)
        w.text(customerName)
        w.text(productName)
        w.optionalText(notes)
        w.optionalText(reason)
        w.text(createdBy)
    }

    init(requestedAt: Int64, customerName: String, productName: String, notes: String?, reason: String?, createdBy: String) {
        self.requestedAt = requestedAt
        self.customerName = customerName
        self.productName = productName
        self.notes = notes
        self.reason = reason
        self.createdBy = createdBy
    }

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        requestedAt = try r.int()
        customerName = try r.text()
        productName = try r.text()
        notes = try r.optionalText()
        reason = try r.optionalText()
        createdBy = try r.text()
        guard r.isAtEnd else { throw RowDamage() }
    }

    /// Just the request time, the first field.
    static func peekRequestedAt(_ bytes: UnsafeRawBufferPointer) throws -> Int64 {
        var r = RowReader(bytes)
        return try r.int()
    }
}

extension RecordRow {
    init(id: String, _ c: RequestColumns, _ d: RequestDetails) {
        self.init(id: id, customerId: c.customerId, productId: c.productId, size: c.size, customerName: d.customerName,
                  productName: d.productName, quantity: c.quantity, delivered: c.delivered, status: c.status, requestedAt: d.requestedAt,
                  completedAt: c.completedAt, notes: d.notes, reason: d.reason, createdBy: d.createdBy, updatedBy: c.updatedBy,
                  updatedAt: c.updatedAt, deliveries: c.deliveries, head: c.head)
    }
}

/// A customer's or product's row as stored: the row the queries show, the version of its
/// stream that the row reflects, and the stream's state as the decider sees it (folded by
/// `StreamState.evolved`, the decider's own rule), so that an append can take both from
/// the view instead of reading the stream from the log.
struct StoredParty<Row> {
    var row: Row
    var version: Int64
    var decision: StreamState
}

enum DecisionCoding {
    static func encode(_ state: StreamState, into w: inout RowWriter) {
        switch state {
        case .none, .record:
            w.byte(0)
        case let .customer(c):
            w.byte(1); w.text(c.name); w.optionalText(c.region); w.byte(c.removed ? 1 : 0)
        case let .product(p):
            w.byte(2); w.text(p.name); w.texts(p.sizes); w.byte(p.removed ? 1 : 0)
        }
    }

    static func decode(_ r: inout RowReader) throws -> StreamState {
        switch try r.byte() {
        case 0: return .none
        case 1: return .customer(CustomerState(name: try r.text(), region: try r.optionalText(), removed: try r.byte() != 0))
        case 2: return .product(ProductState(name: try r.text(), sizes: try r.texts(), removed: try r.byte() != 0))
        default: throw RowDamage()
        }
    }
}

extension StoredParty where Row == CustomerRow {
    func encoded() -> [UInt8] {
        var w = RowWriter(capacity: 80)
        w.text(row.number); w.text(row.name); w.optionalText(row.region); w.optionalText(row.city); w.optionalText(row.country)
        w.byte(row.removed ? 1 : 0)
        w.int(version)
        DecisionCoding.encode(decision, into: &w)
        return w.bytes
    }

    init(id: String, decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        row = CustomerRow(id: id, number: try r.text(), name: try r.text(), region: try r.optionalText(), city: try r.optionalText(),
                          country: try r.optionalText(), removed: try r.byte() != 0)
        version = try r.int()
        decision = try DecisionCoding.decode(&r)
        guard r.isAtEnd else { throw RowDamage() }
    }
}

extension StoredParty where Row == ProductRow {
    func encoded() -> [UInt8] {
        var w = RowWriter(capacity: 80)
        w.text(row.sku); w.text(row.name); w.texts(row.sizes)
        w.byte(row.removed ? 1 : 0)
        w.int(version)
        DecisionCoding.encode(decision, into: &w)
        return w.bytes
    }

    init(id: String, decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        row = ProductRow(id: id, sku: try r.text(), name: try r.text(), sizes: try r.texts(), removed: try r.byte() != 0)
        version = try r.int()
        decision = try DecisionCoding.decode(&r)
        guard r.isAtEnd else { throw RowDamage() }
    }
}

extension RecordStatus {
    /// Its number in stored rows (the order of `allCases`).
    var index: Int { RecordStatus.allCases.firstIndex(of: self) ?? 0 }

    /// The status numbered `index`, or nil.
    init?(index: Int64) {
        guard index >= 0 && index < Int64(RecordStatus.allCases.count) else { return nil }
        self = RecordStatus.allCases[Int(index)]
    }
}

/// A row that writes itself into a reused buffer (`encode(into:)`, the projector's hot
/// path) and, for tests and one-off writes, into a new one.
protocol RowEncoding {
    func encode(into out: inout [UInt8])
}

extension RowEncoding {
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }
}
