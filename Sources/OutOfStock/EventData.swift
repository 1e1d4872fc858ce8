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
///
/// Held as that encoding — each present field once, in field-number order — so that an
/// input line's data is one buffer written as it is parsed: no `String` or array per
/// field, nothing to encode at append (a copy of the bytes), one buffer to free. A value
/// is decoded when asked for; the few a decision reads are short.
public struct EventData: Sendable, Equatable {
    /// Every present field's tag and value, in field-number order (canonical: two equal
    /// datas have equal bytes).
    private var bytes: [UInt8] = []
    /// Which fields `bytes` holds.
    private var present = FieldSet()

    /// Empty data.
    public init() {}

    // Wire types in the low 3 bits of a field's tag byte; the field number above them.
    static let wireVarint: UInt8 = 0, wireFixed64: UInt8 = 1, wireBytes: UInt8 = 2, wireList: UInt8 = 3

    /// The value of a field.
    public subscript(field: Field) -> FieldValue? {
        get {
            guard let span = span(of: field) else { return nil }
            return bytes.withUnsafeBytes { raw in Self.value(raw, span) }
        }
        set {
            guard let newValue else {
                if let span = span(of: field) { bytes.removeSubrange(span.start..<span.end) }
                present.remove(field)
                return
            }
            set(field, { Self.appendValue(newValue, to: &$0) }, wire: { Self.wire(of: newValue) })
        }
    }

    /// A value's encoding, without its tag.
    private static func appendValue(_ value: FieldValue, to out: inout [UInt8]) {
        switch value {
        case let .string(s): appendText(s.utf8, to: &out)
        case let .integer(v): ByteCoding.appendVarint(ByteCoding.zigZag(v), to: &out)
        case let .number(d): withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        case let .strings(list):
            ByteCoding.appendVarint(UInt64(list.count), to: &out)
            for s in list { appendText(s.utf8, to: &out) }
        }
    }

    private static func wire(of value: FieldValue) -> UInt8 {
        switch value {
        case .string: wireBytes
        case .integer: wireVarint
        case .number: wireFixed64
        case .strings: wireList
        }
    }

    /// Data made of fields given in any order — the parser's: a producer may send its keys
    /// sorted by name — written one after the other into one buffer, and put in
    /// field-number order once, at the end, if they came out of it.
    struct Builder {
        private var data = EventData()
        private var ordered = true

        /// `capacity`: bytes reserved (a line's data is about 100).
        init(capacity: Int) { data.bytes.reserveCapacity(capacity) }

        func contains(_ field: Field) -> Bool { data.present.contains(field) }

        /// The fields given so far.
        var fields: FieldSet { data.present }

        mutating func appendText(_ field: Field, _ text: UnsafeRawBufferPointer) {
            begin(field, wire: EventData.wireBytes)
            EventData.appendText(text, to: &data.bytes)
        }

        mutating func appendInteger(_ field: Field, _ value: Int64) {
            begin(field, wire: EventData.wireVarint)
            ByteCoding.appendVarint(ByteCoding.zigZag(value), to: &data.bytes)
        }

        mutating func append(_ field: Field, _ value: FieldValue) {
            begin(field, wire: EventData.wire(of: value))
            EventData.appendValue(value, to: &data.bytes)
        }

        private mutating func begin(_ field: Field, wire: UInt8) {
            precondition(!data.present.contains(field), "field \(field) given twice to an EventData.Builder")
            ordered = ordered && data.present.highest < field.rawValue
            data.present.insert(field)
            data.bytes.append(field.rawValue << 3 | wire)
        }

        /// The data, in field-number order.
        func finish() -> EventData {
            guard !ordered else { return data }
            var sorted = EventData()
            sorted.present = data.present
            sorted.bytes.reserveCapacity(data.bytes.count)
            for span in data.spans().sorted(by: { $0.field.rawValue < $1.field.rawValue }) {
                sorted.bytes.append(contentsOf: data.bytes[span.start..<span.end])
            }
            return sorted
        }
    }

    /// Writes `field`'s tag and value (`write` appends the value) in its place: at the end
    /// when it is the highest field so far (the usual case: producers send fields in
    /// order), else spliced in.
    private mutating func set(_ field: Field, _ write: (inout [UInt8]) -> Void, wire: () -> UInt8) {
        let tag = field.rawValue << 3 | wire()
        if present.highest < field.rawValue {
            bytes.append(tag)
            write(&bytes)
        } else {
            var encoded: [UInt8] = [tag]
            write(&encoded)
            let range = span(of: field).map { $0.start..<$0.end } ?? { let at = insertionPoint(for: field); return at..<at }()
            bytes.replaceSubrange(range, with: encoded)
        }
        present.insert(field)
    }

    /// A text field's value.
    public func string(_ field: Field) -> String? {
        guard let span = span(of: field), span.wire == Self.wireBytes else { return nil }
        return bytes.withUnsafeBytes { raw in
            var i = span.valueStart
            let n = Int(Self.varint(raw, &i))
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[i..<(i + n)]), as: UTF8.self)
        }
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
    public var fields: [Field] { Field.allCases.filter { present.contains($0) } }

    /// Feeds the fields a producer sends (all but `Field.derivedFields`) to `hasher`:
    /// equal for equal producer fields, whatever the derived ones.
    func hashProducerFields(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { raw in
            // An input line's data has no derived fields (the parser refuses them).
            guard present.intersects(Self.derived) else { return hasher.combine(bytes: raw) }
            for span in spans() where !Self.derived.contains(span.field) {
                hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: raw[span.start..<span.end]))
            }
        }
    }

    /// Whether the fields a producer sends are the same in both, byte for byte.
    func hasSameProducerFields(as other: EventData) -> Bool {
        if !present.intersects(Self.derived) && !other.present.intersects(Self.derived) { return bytes == other.bytes }
        func producerBytes(_ data: EventData) -> [UInt8] {
            data.spans().filter { !Self.derived.contains($0.field) }.flatMap { data.bytes[$0.start..<$0.end] }
        }
        return producerBytes(self) == producerBytes(other)
    }

    private static let derived = FieldSet(Field.derivedFields)

    // MARK: Finding fields

    /// Where a field's tag and value are in `bytes`.
    private struct Span {
        let field: Field
        let wire: UInt8
        /// The tag's index, the value's, and the end of the value.
        let start: Int, valueStart: Int, end: Int
    }

    private func span(of field: Field) -> Span? {
        guard present.contains(field) else { return nil }
        if let found = firstSpan(where: { $0 == field }) { return found }
        preconditionFailure("field \(field) is marked present but not encoded")
    }

    /// Where `field` goes: before the first field numbered above it.
    private func insertionPoint(for field: Field) -> Int {
        firstSpan(where: { $0.rawValue > field.rawValue })?.start ?? bytes.count
    }

    /// The fields in `bytes`, in order.
    private func spans() -> [Span] {
        var spans: [Span] = []
        _ = firstSpan(where: { _ in false }, visiting: { spans.append($0) })
        return spans
    }

    /// The first field in `bytes` that `matches`, visiting each before it; `bytes` is this
    /// type's own, well formed. Allocates nothing: a decision reads a few fields per event.
    private func firstSpan(where matches: (Field) -> Bool, visiting visit: (Span) -> Void = { _ in }) -> Span? {
        bytes.withUnsafeBytes { raw in
            var i = 0
            while i < raw.count {
                let tag = raw[i]
                guard let field = Field(rawValue: tag >> 3) else { preconditionFailure("unknown field number \(tag >> 3) in EventData") }
                let end = Self.end(of: tag & 7, raw, from: i + 1)
                let span = Span(field: field, wire: tag & 7, start: i, valueStart: i + 1, end: end)
                if matches(field) { return span }
                visit(span)
                i = end
            }
            return nil
        }
    }

    /// The end of a value of `wire` type that starts at `i` in well-formed bytes.
    private static func end(of wire: UInt8, _ raw: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        switch wire {
        case wireVarint: _ = varint(raw, &i)
        case wireFixed64: i += 8
        case wireBytes: i += Int(varint(raw, &i))
        case wireList:
            for _ in 0..<varint(raw, &i) { i += Int(varint(raw, &i)) }
        default: preconditionFailure("wire type \(wire) in EventData")
        }
        precondition(i <= raw.count, "an EventData value runs past its bytes")
        return i
    }

    /// A varint of well-formed bytes.
    private static func varint(_ raw: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64 {
        guard let base = raw.baseAddress, let value = ByteCoding.readVarint(base, &i, end: raw.count) else {
            preconditionFailure("a truncated varint in EventData")
        }
        return value
    }

    /// The value in `span` of well-formed bytes.
    private static func value(_ raw: UnsafeRawBufferPointer, _ span: Span) -> FieldValue {
        var i = span.valueStart
        func text() -> String {
            let n = Int(varint(raw, &i))
            defer { i += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[i..<(i + n)]), as: UTF8.self)
        }
        switch span.wire {
        case wireVarint:
            let v = varint(raw, &i)
            return .integer(ByteCoding.unZigZag(v))
        case wireFixed64:
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(raw[i + k]) << UInt64(8 * k) }
            return .number(Double(bitPattern: bits))
        case wireBytes:
            return .string(text())
        default:
            return .strings((0..<varint(raw, &i)).map { _ in text() })
        }
    }

    // MARK: Binary encoding

    /// Appends the binary encoding.
    public func encode(into out: inout [UInt8]) { out.append(contentsOf: bytes) }

    /// The binary encoding.
    public func encoded() -> [UInt8] { bytes }

    /// Decodes stored data of `type` at `schemaVersion`, upcasting older versions to the
    /// current shape. Unknown field numbers (from a newer writer) are skipped, and a field
    /// stored twice keeps its last value.
    public static func decode(_ bytes: [UInt8], type: String, schemaVersion: Int) throws -> EventData {
        _ = try Upcaster.storedType(type, schemaVersion: schemaVersion)
        // Each known field's last place, checked as the log's reader checks it.
        var last = [Range<Int>?](repeating: nil, count: Field.allCases.count + 1)
        var inOrder = true, previous: UInt8 = 0, negativeZero = false
        try bytes.withUnsafeBytes { raw in
            var i = 0
            func varint() throws -> UInt64 {
                // The log's reader: a varint past 64 bits is refused, not wrapped.
                guard let base = raw.baseAddress, let value = ByteCoding.readVarint(base, &i, end: raw.count) else {
                    throw InputError(line: 0, field: "data", message: "truncated varint in stored \(type)")
                }
                return value
            }
            func skipText() throws {
                let n = try varint()
                guard n <= UInt64(raw.count - i) else { throw InputError(line: 0, field: "data", message: "length runs past the stored \(type)") }
                i += Int(n)
            }
            while i < raw.count {
                let start = i
                let tag = raw[i]; i += 1
                switch tag & 7 {
                case wireVarint:
                    _ = try varint()
                case wireFixed64:
                    guard i + 8 <= raw.count else { throw InputError(line: 0, field: "data", message: "truncated number in stored \(type)") }
                    negativeZero = negativeZero || raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) == (-0.0 as Double).bitPattern.littleEndian
                    i += 8
                case wireBytes:
                    try skipText()
                case wireList:
                    let n = try varint()
                    guard n <= UInt64(raw.count - i) else { throw InputError(line: 0, field: "data", message: "length runs past the stored \(type)") }
                    for _ in 0..<n { try skipText() }
                default:
                    throw InputError(line: 0, field: "data", message: "unknown wire type \(tag & 7) in stored \(type)")
                }
                guard let field = Field(rawValue: tag >> 3) else { inOrder = false; continue }
                inOrder = inOrder && field.rawValue > previous
                previous = field.rawValue
                last[Int(field.rawValue)] = start..<i
            }
        }
        var data = EventData()
        if inOrder {
            // What every writer of this build stores: taken as it is.
            data.bytes = bytes
            for field in Field.allCases where last[Int(field.rawValue)] != nil { data.present.insert(field) }
        } else {
            for field in Field.allCases {
                guard let range = last[Int(field.rawValue)] else { continue }
                data.bytes.append(contentsOf: bytes[range])
                data.present.insert(field)
            }
        }
        if negativeZero {
            // -0 (stored by builds before inputs were made +0) reads as 0: equal numbers
            // have equal bytes, which a resend's comparison relies on.
            for field in data.fields { if case let .number(v) = data[field], v == 0 { data[field] = .number(0) } }
        }
        return Upcaster.upcast(data, type: type, from: schemaVersion)
    }

    private static func appendText<Text: Collection<UInt8>>(_ text: Text, to out: inout [UInt8]) {
        ByteCoding.appendVarint(UInt64(text.count), to: &out)
        out.append(contentsOf: text)
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
        // The version first: the projector and `read` ask for every event, nearly all at 2+.
        version < 2 && (type == "OutOfStockReported" || type == "OutOfStockAmended")
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
