import EventLog
import EventStore
import OutOfStock

/// The kinds of event the records view applies, by what they do to a request or a party.
enum EventKind {
    case customer, customerRemoved, product, productRemoved
    case reported, amended, delivery, closed, refunded, deleted

    init(_ type: EventType) {
        switch type.kind {
        case .customerRegistered, .customerUpdated: self = .customer
        case .customerRemoved: self = .customerRemoved
        case .productRegistered, .productUpdated: self = .product
        case .productRemoved: self = .productRemoved
        case .outOfStockReported: self = .reported
        case .outOfStockAmended: self = .amended
        case .deliveryRecorded: self = .delivery
        case .outOfStockClosed: self = .closed
        case .refundRecorded: self = .refunded
        case .outOfStockDeleted: self = .deleted
        }
    }
}

/// The fields of a request's event, read straight from its stored data (docs/EVENTS.md,
/// "Data encoding"), with `EventData.decode`'s rules: unknown fields are skipped, a field
/// stored with another wire type than its own reads as absent, a repeated field keeps its
/// last value, and the names that schema version 1 did not keep are ignored (upcast).
struct RecordFields {
    var recordId: String?
    var customerId: String?
    var productId: String?
    var size: String?
    var quantity: Int64?
    var notes: String?
    var reason: String?
    var customerName: String?
    var productName: String?

    init(_ data: UnsafeRawBufferPointer, type: String, schemaVersion: Int) throws {
        guard let base = data.baseAddress else { return }
        let end = data.count
        var p = 0
        func fail(_ reason: String) -> InputError { InputError(line: 0, field: "data", message: "\(reason) in stored \(type)") }
        func bytes() throws -> UnsafeRawBufferPointer {
            guard let n = ByteCodingAccess.readVarint(base, &p, end: end), n <= UInt64(end - p) else { throw fail("length runs past the data") }
            defer { p += Int(n) }
            return UnsafeRawBufferPointer(start: base + p, count: Int(n))
        }
        while p < end {
            let tag = base.load(fromByteOffset: p, as: UInt8.self)
            p += 1
            let field = tag >> 3, wire = tag & 7
            switch wire {
            case 0:
                guard let v = ByteCodingAccess.readVarint(base, &p, end: end) else { throw fail("truncated varint") }
                if field == 5 { quantity = ByteCoding.unZigZag(v) }
            case 1:
                guard p + 8 <= end else { throw fail("truncated number") }
                p += 8
            case 2:
                let value = try bytes()
                let text = { String(decoding: value, as: UTF8.self) }
                switch field {
                case 1: recordId = text()
                case 2: customerId = text()
                case 3: productId = text()
                case 4: size = text()
                case 6: notes = text()
                case 7: reason = text()
                case 18: customerName = text()
                case 19: productName = text()
                default: break
                }
            case 3:
                guard let n = ByteCodingAccess.readVarint(base, &p, end: end), n <= UInt64(end - p) else { throw fail("length runs past the data") }
                for _ in 0..<n { _ = try bytes() }
            default:
                throw fail("unknown wire type \(wire)")
            }
        }
        if Upcaster.dropsDerivedNames(type: type, from: schemaVersion) {
            customerName = nil
            productName = nil
        }
    }
}

import EventLog

/// `ByteCoding`'s varint reader, which `EventLog` shares with its package.
enum ByteCodingAccess {
    @inline(__always)
    static func readVarint(_ base: UnsafeRawPointer, _ position: inout Int, end: Int) -> UInt64? {
        ByteCoding.readVarint(base, &position, end: end)
    }
}
