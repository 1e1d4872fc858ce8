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
public struct EventType: Sendable, Equatable {
    /// The type's name in the envelope.
    public let name: String
    /// Current schema version of its stored data.
    public let schemaVersion: Int
    let required: [Field]
    let optional: [Field]
    /// The field whose value is the stream id (record, customer or product).
    public let streamField: Field
    /// `*Updated` types need at least one field besides the id.
    let needsChange: Bool

    func allows(_ field: Field) -> Bool { required.contains(field) || optional.contains(field) }

    /// All types, by name.
    public static let all: [String: EventType] = {
        let customerFields: [Field] = [.number, .name, .address, .phone, .country, .region, .city]
        let types = [
            EventType(name: "CustomerRegistered", schemaVersion: 1, required: [.customerId, .number, .name],
                      optional: [.address, .phone, .country, .region, .city], streamField: .customerId, needsChange: false),
            EventType(name: "CustomerUpdated", schemaVersion: 1, required: [.customerId], optional: customerFields,
                      streamField: .customerId, needsChange: true),
            EventType(name: "CustomerRemoved", schemaVersion: 1, required: [.customerId], optional: [], streamField: .customerId, needsChange: false),
            EventType(name: "ProductRegistered", schemaVersion: 1, required: [.productId, .sku, .name, .sizes], optional: [.price],
                      streamField: .productId, needsChange: false),
            EventType(name: "ProductUpdated", schemaVersion: 1, required: [.productId], optional: [.sku, .name, .sizes, .price],
                      streamField: .productId, needsChange: true),
            EventType(name: "ProductRemoved", schemaVersion: 1, required: [.productId], optional: [], streamField: .productId, needsChange: false),
            EventType(name: "OutOfStockReported", schemaVersion: 2, required: [.recordId, .customerId, .productId, .quantity],
                      optional: [.size, .notes], streamField: .recordId, needsChange: false),
            EventType(name: "OutOfStockAmended", schemaVersion: 2, required: [.recordId], optional: [.quantity, .notes, .customerId, .productId, .size],
                      streamField: .recordId, needsChange: false),
            EventType(name: "DeliveryRecorded", schemaVersion: 1, required: [.recordId, .quantity], optional: [.notes],
                      streamField: .recordId, needsChange: false),
            EventType(name: "OutOfStockClosed", schemaVersion: 1, required: [.recordId], optional: [.reason], streamField: .recordId, needsChange: false),
            EventType(name: "RefundRecorded", schemaVersion: 1, required: [.recordId], optional: [.reason], streamField: .recordId, needsChange: false),
            EventType(name: "OutOfStockDeleted", schemaVersion: 1, required: [.recordId], optional: [.reason], streamField: .recordId, needsChange: false),
        ]
        return Dictionary(uniqueKeysWithValues: types.map { ($0.name, $0) })
    }()

    /// The input contract's version (the NDJSON envelope's `schemaVersion`).
    public static let inputSchemaVersion = 1
}
