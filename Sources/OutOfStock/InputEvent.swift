import CSimdJSON
import EventStore
#if canImport(Glibc)
import Glibc
#endif

/// One validated input line: the envelope of `domain.md` and its typed data.
public struct InputEvent: Sendable, Equatable {
    /// The event id; nil when the line had none (the store assigns one and reports it).
    public var id: EventID?
    /// The event type.
    public private(set) var type: EventType
    /// The tenant (`default` when absent).
    public var tenant: String
    /// Business time in µs since the epoch; nil when absent (now).
    public var at: Int64?
    /// Who did it.
    public var actor: String
    /// The stream version the producer expects before this event.
    public var expectedVersion: Int64?
    /// Batch operation id.
    public var correlationId: String?
    /// The type's fields.
    public private(set) var data: EventData
    /// Whether the line named its tenant (a server's request names it otherwise).
    public var tenantGiven = true
    /// The stream this event belongs to: its record, customer or product id.
    public let stream: String
    /// The stream's name (`type.streamName(stream)`, like `record/R-1`).
    public let streamName: String

    /// An event; its stream is read from `data` once, here (the ingest asks for it at
    /// each step, and a name longer than 15 bytes is an allocation each time it is made).
    init(id: EventID?, type: EventType, tenant: String, at: Int64?, actor: String, expectedVersion: Int64?, correlationId: String?,
         data: EventData, tenantGiven: Bool) {
        self.id = id
        self.type = type
        self.tenant = tenant
        self.at = at
        self.actor = actor
        self.expectedVersion = expectedVersion
        self.correlationId = correlationId
        self.data = data
        self.tenantGiven = tenantGiven
        self.stream = data.string(type.streamField) ?? ""
        self.streamName = type.streamName(stream)
    }
}

/// Turns NDJSON lines into `InputEvent`s, checking them against the v1 input contract
/// (`schemas/v1/`): every error names the line and the field path.
///
/// Not thread-safe: use one parser from one task at a time (the ingestor hands each of
/// its two parsers to one task at a time, hence `@unchecked Sendable`).
public final class InputParser: @unchecked Sendable {
    private let parser: JSONParser

    /// A parser (not thread-safe: one per thread).
    public init() throws { parser = try JSONParser() }

    /// Parses and validates one line (without its newline). `line` is its 1-based number.
    public func parse(_ bytes: UnsafeRawBufferPointer, line: Int) -> Result<InputEvent, InputError> {
        switch parser.parse(bytes) {
        case let .failure(error):
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
                return .failure(InputError(line: line, field: "", message: "the line starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON does not allow: save the input without it"))
            }
            return .failure(InputError(line: line, field: "", message: "invalid JSON: \(error.message)"))
        case let .success(document):
            do { return .success(try Self.validate(document, line: line)) } catch let error as InputError {
                return .failure(error)
            } catch {
                return .failure(InputError(line: line, field: "", message: "\(error)"))
            }
        }
    }

    /// Parses a line given as a string.
    public func parse(_ text: String, line: Int = 1) -> Result<InputEvent, InputError> {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { parse(UnsafeRawBufferPointer($0), line: line) }
    }

    private static func validate(_ doc: JSONDocument, line: Int) throws -> InputEvent {
        func fail(_ field: String, _ message: String) -> InputError { InputError(line: line, field: field, message: message) }
        guard doc.type(0) == Int32(BO_JSON_OBJECT.rawValue) else { throw fail("", "a line must be a JSON object, not \(doc.type(0).jsonTypeName)") }
        var id: EventID?, typeName: UnsafeRawBufferPointer?, tenant = "default", tenantGiven = false, at: Int64?, actor: String?
        var expectedVersion: Int64?, correlationId: String?, dataNode: Int?
        // Which envelope fields were seen, as bits in the order of `KeyTable.envelope`.
        var seen: UInt16 = 0
        for node in doc.children(of: 0) {
            let keyIndex = KeyTable.envelope.index(of: doc.key(node))
            // The key's name, made only for an error message.
            func key() -> String { keyIndex.map { KeyTable.envelope.names[$0] } ?? doc.keyString(node) }
            guard let keyIndex else { throw fail(key(), "is not a field of the envelope") }
            let bit: UInt16 = 1 << keyIndex
            guard seen & bit == 0 else { throw fail(key(), "appears twice") }
            seen |= bit
            func string() throws -> UnsafeRawBufferPointer {
                guard doc.type(node) == Int32(BO_JSON_STRING.rawValue) else { throw fail(key(), "must be a string, not \(doc.type(node).jsonTypeName)") }
                return doc.stringBytes(node)
            }
            switch keyIndex {
            case KeyTable.Envelope.id:
                guard let parsed = EventID(text: try string()) else { throw fail(key(), "must be a UUID like 5f0c9a0e-8a7e-4c2b-9a51-1c6f7f1d2a10") }
                id = parsed
            case KeyTable.Envelope.type:
                // Checked after the loop, as a missing type is (the bytes stay valid: the
                // document is this line's until the parser's next line).
                typeName = try string()
            case KeyTable.Envelope.tenant:
                let bytes = try string()
                guard (1...64).contains(bytes.count), bytes.allSatisfy(isTenantByte), bytes.contains(where: { $0 != UInt8(ascii: ".") }) else {
                    throw fail(key(), "must be 1–64 characters of A–Z a–z 0–9 _ . -, not only dots")
                }
                tenant = String(decoding: bytes, as: UTF8.self)
                tenantGiven = true
            case KeyTable.Envelope.at:
                guard let time = Timestamp.parse(try string()) else {
                    throw fail(key(), "must be an RFC 3339 time like 2026-11-22T09:41:07.250Z (with Z or an offset)")
                }
                at = time
            case KeyTable.Envelope.actor:
                let bytes = try string()
                guard (1...64).contains(codePoints(bytes)) else { throw fail(key(), "must be 1–64 characters") }
                actor = String(decoding: bytes, as: UTF8.self)
            case KeyTable.Envelope.expectedVersion:
                guard let v = doc.integer(node), v >= 0 else { throw fail(key(), "must be an integer ≥ 0 (0: the stream must not exist)") }
                expectedVersion = v
            case KeyTable.Envelope.correlationId:
                let bytes = try string()
                guard (1...128).contains(codePoints(bytes)) else { throw fail(key(), "must be 1–128 characters") }
                correlationId = String(decoding: bytes, as: UTF8.self)
            case KeyTable.Envelope.schemaVersion:
                guard doc.integer(node) == Int64(EventType.inputSchemaVersion) else { throw fail(key(), "must be 1 (the only input schema version)") }
            case KeyTable.Envelope.data:
                guard doc.type(node) == Int32(BO_JSON_OBJECT.rawValue) else { throw fail(key(), "must be an object, not \(doc.type(node).jsonTypeName)") }
                dataNode = node
            case KeyTable.Envelope.position, KeyTable.Envelope.recordedAt:
                // What `backorder read` adds: where and when the event was stored. Ignored.
                _ = try string()
            case KeyTable.Envelope.version:
                guard let v = doc.integer(node), v >= 1 else { throw fail(key(), "must be an integer ≥ 1 (the event's stream version, as `backorder read` writes it)") }
            case KeyTable.Envelope.derived:
                // The names the store added to a report (`backorder read`): added again here.
                guard doc.type(node) == Int32(BO_JSON_OBJECT.rawValue) else { throw fail(key(), "must be an object, not \(doc.type(node).jsonTypeName)") }
            default:
                preconditionFailure("envelope key \(keyIndex) has no rule")
            }
        }
        guard let typeName else { throw fail("type", "is required") }
        guard let type = EventType(named: typeName) else {
            let known = EventType.all.keys.sorted().joined(separator: ", ")
            throw fail("type", "unknown event type \"\(String(decoding: typeName, as: UTF8.self))\"; expected one of \(known)")
        }
        guard let actor else { throw fail("actor", "is required") }
        guard let dataNode else { throw fail("data", "is required") }
        let data = try validateData(doc, dataNode, type: type, fail: fail)
        return InputEvent(id: id, type: type, tenant: tenant, at: at, actor: actor, expectedVersion: expectedVersion,
                          correlationId: correlationId, data: data, tenantGiven: tenantGiven)
    }

    private static func validateData(_ doc: JSONDocument, _ object: Int, type: EventType, fail: (String, String) -> InputError) throws -> EventData {
        var data = EventData.Builder(capacity: 160)
        var count = 0
        let allowed = type.allowedFields
        for node in doc.children(of: object) {
            guard let index = KeyTable.fields.index(of: doc.key(node)), let field = Field(rawValue: UInt8(index + 1)), allowed.contains(field) else {
                throw fail("data." + doc.keyString(node), "is not a field of \(type.name)")
            }
            guard !data.contains(field) else { throw fail(field.pathInData, "appears twice") }
            try set(field, of: doc, node, in: &data, fail: fail)
            count += 1
        }
        if !data.fields.isSuperset(of: type.requiredFields) {
            for field in type.required where !data.contains(field) { throw fail("data." + field.name, "is required for \(type.name)") }
        }
        if type.needsChange && count < 2 { throw fail("data", "\(type.name) needs at least one changed field besides \(type.streamField.name)") }
        return data.finish()
    }

    /// Checks a field's value and writes it into `data` (text as its bytes: no `String`).
    /// The field's path (`data.<name>`) is made only for an error.
    private static func set(_ field: Field, of doc: JSONDocument, _ node: Int, in data: inout EventData.Builder, fail: (String, String) -> InputError) throws {
        let isString = doc.type(node) == Int32(BO_JSON_STRING.rawValue)
        var path: String { field.pathInData }
        switch field.kind {
        case .id:
            guard isString else { throw fail(path, "must be a string, not \(doc.type(node).jsonTypeName)") }
            let bytes = doc.stringBytes(node)
            guard (1...64).contains(bytes.count), bytes.allSatisfy(isIDByte) else { throw fail(path, "must be 1–64 characters of A–Z a–z 0–9 _ . : -") }
            data.appendText(field, bytes)
        case let .text(min, max):
            guard isString else { throw fail(path, "must be a string, not \(doc.type(node).jsonTypeName)") }
            let bytes = doc.stringBytes(node)
            let n = codePoints(bytes)
            guard n >= min && n <= max else { throw fail(path, min > 0 ? "must be \(min)–\(max) characters" : "must be at most \(max) characters") }
            data.appendText(field, bytes)
        case .quantity:
            guard let v = doc.integer(node) else { throw fail(path, "must be an integer, not \(doc.notAnInteger(node))") }
            guard v >= 1 && v <= 1_000_000 else { throw fail(path, "must be between 1 and 1,000,000, not \(v)") }
            data.appendInteger(field, v)
        case .price:
            guard let v = doc.number(node) else { throw fail(path, "must be a number, not \(doc.type(node).jsonTypeName)") }
            guard v >= 0 && v.isFinite else { throw fail(path, "must be ≥ 0") }
            // -0 is stored as 0: equal prices have equal bytes (a resend compares bytes).
            data.append(field, .number(v == 0 ? 0 : v))
        case .sizes:
            guard doc.type(node) == Int32(BO_JSON_ARRAY.rawValue) else { throw fail(path, "must be an array of sizes, not \(doc.type(node).jsonTypeName)") }
            var sizes: [String] = []
            for (k, element) in doc.children(of: node).enumerated() {
                guard doc.type(element) == Int32(BO_JSON_STRING.rawValue), (1...16).contains(codePoints(doc.stringBytes(element))) else {
                    throw fail("\(path)[\(k)]", "must be a size of 1–16 characters")
                }
                let size = doc.string(element)
                guard !sizes.contains(size) else { throw fail(path, "lists \"\(size)\" twice") }
                sizes.append(size)
            }
            guard (1...20).contains(sizes.count) else { throw fail(path, "must list 1–20 sizes") }
            data.append(field, .strings(sizes))
        }
    }
}

/// Matches JSON keys against a fixed list by their bytes, without making Strings.
struct KeyTable: Sendable {
    let names: [String]
    private let bytes: [[UInt8]]

    init(_ names: [String]) {
        self.names = names
        self.bytes = names.map { Array($0.utf8) }
    }

    func index(of key: UnsafeRawBufferPointer) -> Int? {
        for (i, candidate) in bytes.enumerated() where candidate.count == key.count {
            if candidate.elementsEqual(key) { return i }
        }
        return nil
    }

    static let envelope = KeyTable(["id", "type", "tenant", "at", "actor", "expectedVersion", "correlationId", "schemaVersion", "data",
                                     "position", "version", "recordedAt", "derived"])
    /// Indices in `envelope`.
    enum Envelope {
        static let id = 0, type = 1, tenant = 2, at = 3, actor = 4, expectedVersion = 5, correlationId = 6, schemaVersion = 7, data = 8
        static let position = 9, version = 10, recordedAt = 11, derived = 12
    }
    /// The event types' names, in `EventType.Kind` order.
    static let eventTypes = KeyTable(EventType.Kind.allCases.map { EventType($0).name })
    /// In field-number order (field n at index n - 1).
    static let fields = KeyTable(Field.allCases.map(\.name))
}

extension Field {
    /// `data.<name>`, for error messages.
    var pathInData: String { "data." + name }
}

@inline(__always) private func isTenantByte(_ b: UInt8) -> Bool {
    (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 95 || b == 46 || b == 45
}

@inline(__always) private func isIDByte(_ b: UInt8) -> Bool { isTenantByte(b) || b == 58 }

/// Unicode code points of valid UTF-8 (simdjson has validated it): bytes that do not
/// continue a sequence.
@inline(__always) private func codePoints(_ bytes: UnsafeRawBufferPointer) -> Int {
    var n = 0
    for b in bytes where b & 0xC0 != 0x80 { n += 1 }
    return n
}
