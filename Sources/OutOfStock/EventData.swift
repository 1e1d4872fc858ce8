import EventLog

/// One field's value.
public enum FieldValue: Sendable, Hashable {
    /// Text and ids.
    case string(String)
    /// Quantities.
    case integer(Int64)
    /// Prices.
    case number(Double)
    /// Size lists.
    case strings([String])
}

/// The `data` of an event: values by field. Encoded in the log as a list of tagged
/// fields (docs/EVENTS.md, "Data encoding"), so that fields can be added without
/// breaking old readers, and old versions are upcast on read.
public struct EventData: Sendable, Equatable {
    private var values: [FieldValue?] = Array(repeating: nil, count: Field.allCases.count + 1)

    /// Empty data.
    public init() {}

    /// The value of a field.
    public subscript(field: Field) -> FieldValue? {
        get { values[Int(field.rawValue)] }
        set { values[Int(field.rawValue)] = newValue }
    }

    /// A text field's value.
    public func string(_ field: Field) -> String? {
        if case let .string(s) = self[field] { return s }
        return nil
    }

    /// An integer field's value.
    public func integer(_ field: Field) -> Int64? {
        if case let .integer(v) = self[field] { return v }
        return nil
    }

    /// A number field's value.
    public func number(_ field: Field) -> Double? {
        if case let .number(v) = self[field] { return v }
        return nil
    }

    /// A list field's value.
    public func strings(_ field: Field) -> [String]? {
        if case let .strings(v) = self[field] { return v }
        return nil
    }

    /// The fields that have values, in field-number order.
    public var fields: [Field] { Field.allCases.filter { self[$0] != nil } }

    // MARK: Binary encoding

    // Wire types in the low 3 bits of a field's tag byte; the field number above them.
    private static let wireVarint: UInt8 = 0, wireFixed64: UInt8 = 1, wireBytes: UInt8 = 2, wireList: UInt8 = 3

    /// Appends the binary encoding.
    public func encode(into out: inout [UInt8]) {
        for field in Field.allCases {
            guard let value = self[field] else { continue }
            switch value {
            case let .string(s):
                out.append(field.rawValue << 3 | Self.wireBytes)
                Self.appendVarint(UInt64(s.utf8.count), &out)
                out.append(contentsOf: s.utf8)
            case let .integer(v):
                out.append(field.rawValue << 3 | Self.wireVarint)
                Self.appendVarint(UInt64(bitPattern: (v << 1) ^ (v >> 63)), &out)
            case let .number(d):
                out.append(field.rawValue << 3 | Self.wireFixed64)
                withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            case let .strings(list):
                out.append(field.rawValue << 3 | Self.wireList)
                Self.appendVarint(UInt64(list.count), &out)
                for s in list {
                    Self.appendVarint(UInt64(s.utf8.count), &out)
                    out.append(contentsOf: s.utf8)
                }
            }
        }
    }

    /// The binary encoding.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        encode(into: &out)
        return out
    }

    /// Decodes stored data of `type` at `schemaVersion`, upcasting older versions to the
    /// current shape. Unknown field numbers (from a newer writer) are skipped.
    public static func decode(_ bytes: [UInt8], type: String, schemaVersion: Int) throws -> EventData {
        _ = try Upcaster.storedType(type, schemaVersion: schemaVersion)
        var data = EventData()
        var i = 0
        func varint() throws -> UInt64 {
            // The log's reader: a varint past 64 bits is refused, not wrapped.
            let value = bytes.withUnsafeBytes { raw in raw.baseAddress.flatMap { ByteCoding.readVarint($0, &i, end: raw.count) } }
            guard let value else { throw InputError(line: 0, field: "data", message: "truncated varint in stored \(type)") }
            return value
        }
        func length() throws -> Int {
            let n = try varint()
            guard n <= UInt64(bytes.count - i) else { throw InputError(line: 0, field: "data", message: "length runs past the stored \(type)") }
            return Int(n)
        }
        func text() throws -> String {
            let n = try length()
            guard n <= bytes.count - i else { throw InputError(line: 0, field: "data", message: "truncated text in stored \(type)") }
            defer { i += n }
            return String(decoding: bytes[i..<(i + n)], as: UTF8.self)
        }
        while i < bytes.count {
            let tag = bytes[i]; i += 1
            let field = Field(rawValue: tag >> 3)
            let value: FieldValue
            switch tag & 7 {
            case wireVarint:
                let v = try varint()
                value = .integer(Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1))
            case wireFixed64:
                guard i + 8 <= bytes.count else { throw InputError(line: 0, field: "data", message: "truncated number in stored \(type)") }
                var bits: UInt64 = 0
                for k in 0..<8 { bits |= UInt64(bytes[i + k]) << UInt64(8 * k) }
                i += 8
                value = .number(Double(bitPattern: bits))
            case wireBytes:
                value = .string(try text())
            case wireList:
                let n = try length()
                var list: [String] = []
                for _ in 0..<n { list.append(try text()) }
                value = .strings(list)
            default:
                throw InputError(line: 0, field: "data", message: "unknown wire type \(tag & 7) in stored \(type)")
            }
            if let field { data[field] = value }
        }
        return Upcaster.upcast(data, type: type, from: schemaVersion)
    }

    static func appendVarint(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }
}

/// Brings stored data of an older schema version to the current shape, on read; the log
/// is never rewritten (schemas/README.md, "Evolution rules").
public enum Upcaster {
    static func upcast(_ data: EventData, type: String, from version: Int) -> EventData {
        var data = data
        if dropsDerivedNames(type: type, from: version) {
            for field in Field.derivedFields { data[field] = nil }
        }
        return data
    }

    /// Whether stored data of `type` at `version` predates the derived names: version 1 of
    /// a report or an amendment did not keep the customer's and product's names, so readers
    /// ignore any and fall back to the ids ("name unknown when reported"). Readers that
    /// walk stored data in place (`StoredDataJSON`, the records view) apply it too.
    public static func dropsDerivedNames(type: String, from version: Int) -> Bool {
        (type == "OutOfStockReported" || type == "OutOfStockAmended") && version < 2
    }

    /// The type of stored data, checked as every reader checks it: known to this build, and
    /// at a schema version it reads.
    static func storedType(_ type: String, schemaVersion: Int) throws -> EventType {
        guard let eventType = EventType(named: type) else { throw InputError(line: 0, field: "type", message: "unknown stored event type \(type)") }
        guard schemaVersion >= 1 && schemaVersion <= eventType.schemaVersion else {
            throw InputError(line: 0, field: "schemaVersion", message: "\(type) schema version \(schemaVersion) is newer than this build reads (\(eventType.schemaVersion))")
        }
        return eventType
    }
}
