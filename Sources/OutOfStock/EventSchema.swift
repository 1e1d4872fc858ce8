/// The event types of the domain and their `data` fields, as code: this table must agree
/// with the JSON Schemas in `schemas/v1/` (a test checks every example and counter-example
/// against it). Field numbers are the binary in-log encoding's tags: never reused.
public enum Field: UInt8, CaseIterable, Sendable {
    case recordId = 1, customerId, productId, size, quantity, notes, reason
    case number, name, address, phone, country, region, city, sku, sizes, price
    /// Added by the store at append time (schema version 2 of `OutOfStockReported`):
    /// the customer's and product's names as they were.
    case customerName, productName

    /// The fields a producer sends; the others (`derived`) are added by the store.
    public static let producerFields = allCases.filter { !derivedFields.contains($0) }
    /// The fields the store adds at append: a report's customer and product names.
    public static let derivedFields: [Field] = [.customerName, .productName]

    /// The JSON name.
    public var name: String {
        switch self {
        case .recordId: "recordId"
        case .customerId: "customerId"
        case .productId: "productId"
        case .size: "size"
        case .quantity: "quantity"
        case .notes: "notes"
        case .reason: "reason"
        case .number: "number"
        case .name: "name"
        case .address: "address"
        case .phone: "phone"
        case .country: "country"
        case .region: "region"
        case .city: "city"
        case .sku: "sku"
        case .sizes: "sizes"
        case .price: "price"
        case .customerName: "customerName"
        case .productName: "productName"
        }
    }

    /// What a value must look like (the JSON Schema's constraints).
    var kind: FieldKind {
        switch self {
        case .recordId, .customerId, .productId: .id
        case .quantity: .quantity
        case .size: .text(min: 1, max: 16)
        case .number, .sku: .text(min: 1, max: 64)
        case .name, .customerName, .productName: .text(min: 1, max: 200)
        case .notes, .reason, .address, .phone, .country, .region, .city: .text(min: 0, max: 2_000)
        case .sizes: .sizes
        case .price: .price
        }
    }

    static let byName: [String: Field] = Dictionary(uniqueKeysWithValues: Field.allCases.map { ($0.name, $0) })
}

/// A set of fields, one bit per field number.
struct FieldSet: Equatable {
    private(set) var bits: UInt32 = 0

    init() {}

    init(_ fields: [Field]) {
        for field in fields { insert(field) }
    }

    func contains(_ field: Field) -> Bool { bits & (1 << UInt32(field.rawValue)) != 0 }

    mutating func insert(_ field: Field) { bits |= 1 << UInt32(field.rawValue) }

    mutating func remove(_ field: Field) { bits &= ~(1 << UInt32(field.rawValue)) }

    /// The highest field number in the set (0 when empty).
    var highest: UInt8 { UInt8(31 - min(bits.leadingZeroBitCount, 31)) }

    func intersects(_ other: FieldSet) -> Bool { bits & other.bits != 0 }

    /// Whether every field of `other` is in this set.
    func isSuperset(of other: FieldSet) -> Bool { other.bits & ~bits == 0 }
}

enum FieldKind: Equatable {
    /// 1–64 characters of A–Z a–z 0–9 _ . : -
    case id
    /// A string of `min`…`max` Unicode code points.
    case text(min: Int, max: Int)
    /// An integer 1…1,000,000.
    case quantity
    /// 1–20 distinct strings of 1–16 code points.
    case sizes
    /// A number ≥ 0.
    case price
}

/// One event type: name, schema version, fields, and which field names its stream.
///
/// A one-byte value (its `Kind`): an input event carries it, the rules switch on it, and
/// copying it retains nothing. Its name, fields and versions are answered by `switch`es.
public struct EventType: Sendable, Hashable {
    /// The domain's event types (domain.md, "Events"). The number is this build's, never
    /// stored: the log keeps a type's name.
    public enum Kind: UInt8, CaseIterable, Sendable {
        case customerRegistered, customerUpdated, customerRemoved
        case productRegistered, productUpdated, productRemoved
        case outOfStockReported, outOfStockAmended, deliveryRecorded, outOfStockClosed, refundRecorded, outOfStockDeleted
    }

    /// Which type.
    public let kind: Kind

    /// The type of `kind`.
    public init(_ kind: Kind) { self.kind = kind }

    /// The type whose envelope name is `name`'s bytes, or nil (no `String` is made).
    public init?(named name: UnsafeRawBufferPointer) {
        guard let index = KeyTable.eventTypes.index(of: name), let kind = Kind(rawValue: UInt8(index)) else { return nil }
        self.kind = kind
    }

    /// The type named `name`, or nil.
    public init?(named name: String) {
        var name = name
        guard let type = name.withUTF8({ EventType(named: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = type
    }

    /// The type's name in the envelope.
    public var name: String {
        switch kind {
        case .customerRegistered: "CustomerRegistered"
        case .customerUpdated: "CustomerUpdated"
        case .customerRemoved: "CustomerRemoved"
        case .productRegistered: "ProductRegistered"
        case .productUpdated: "ProductUpdated"
        case .productRemoved: "ProductRemoved"
        case .outOfStockReported: "OutOfStockReported"
        case .outOfStockAmended: "OutOfStockAmended"
        case .deliveryRecorded: "DeliveryRecorded"
        case .outOfStockClosed: "OutOfStockClosed"
        case .refundRecorded: "RefundRecorded"
        case .outOfStockDeleted: "OutOfStockDeleted"
        }
    }

    /// Current schema version of its stored data: 2 for the types that keep the names of
    /// the customer and product they name.
    public var schemaVersion: Int { kind == .outOfStockReported || kind == .outOfStockAmended ? 2 : 1 }

    /// The field whose value is the stream id (record, customer or product).
    public var streamField: Field {
        switch kind {
        case .customerRegistered, .customerUpdated, .customerRemoved: .customerId
        case .productRegistered, .productUpdated, .productRemoved: .productId
        default: .recordId
        }
    }

    /// `*Updated` types need at least one field besides the id.
    var needsChange: Bool { kind == .customerUpdated || kind == .productUpdated }

    /// The fields a line of this type must have, in the order their absence is reported.
    var required: [Field] {
        switch kind {
        case .customerRegistered: [.customerId, .number, .name]
        case .productRegistered: [.productId, .sku, .name, .sizes]
        case .outOfStockReported: [.recordId, .customerId, .productId, .quantity]
        case .deliveryRecorded: [.recordId, .quantity]
        default: [streamField]
        }
    }

    /// The fields a line of this type may have besides the required ones.
    var optional: [Field] {
        switch kind {
        case .customerRegistered: [.address, .phone, .country, .region, .city]
        case .customerUpdated: [.number, .name, .address, .phone, .country, .region, .city]
        case .productRegistered: [.price]
        case .productUpdated: [.sku, .name, .sizes, .price]
        case .outOfStockReported: [.size, .notes]
        case .outOfStockAmended: [.quantity, .notes, .customerId, .productId, .size]
        case .deliveryRecorded: [.notes]
        case .outOfStockClosed, .refundRecorded, .outOfStockDeleted: [.reason]
        case .customerRemoved, .productRemoved: []
        }
    }

    /// `required` and `optional` as sets, worked out once per type.
    var requiredFields: FieldSet { Self.fieldSets[Int(kind.rawValue)].required }
    var allowedFields: FieldSet { Self.fieldSets[Int(kind.rawValue)].allowed }

    private static let fieldSets: [(required: FieldSet, allowed: FieldSet)] = Kind.allCases.map { kind in
        let type = EventType(kind)
        return (FieldSet(type.required), FieldSet(type.required + type.optional))
    }

    /// All types, by name.
    public static let all: [String: EventType] = Dictionary(uniqueKeysWithValues: Kind.allCases.map { (EventType($0).name, EventType($0)) })

    /// The input contract's version (the NDJSON envelope's `schemaVersion`).
    public static let inputSchemaVersion = 1
}
