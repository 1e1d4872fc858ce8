import CSimdJSON

/// One NDJSON line parsed by simdjson (through the `CSimdJSON` C API) into a flat array
/// of nodes in document order. Strings point into the parser's storage: a `JSONDocument`
/// is valid only until its parser parses the next line.
final class JSONParser {
    private let parser: OpaquePointer

    init() throws {
        guard let parser = bo_json_parser_new() else { throw InputError(line: 0, field: "", message: "out of memory creating the JSON parser") }
        self.parser = parser
    }

    deinit { bo_json_parser_free(parser) }

    /// Parses one document; the error message is simdjson's.
    func parse(_ bytes: UnsafeRawBufferPointer) -> Result<JSONDocument, JSONParseError> {
        var nodes: UnsafePointer<bo_json_node>?
        var count = 0
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        let code = bo_json_parse(parser, base, bytes.count, &nodes, &count)
        guard code == 0, let nodes else { return .failure(JSONParseError(message: String(cString: bo_json_error_message(code)))) }
        return .success(JSONDocument(nodes: UnsafeBufferPointer(start: nodes, count: count)))
    }
}

struct JSONParseError: Error {
    let message: String
}

/// A parsed document: node 0 is the root.
struct JSONDocument {
    let nodes: UnsafeBufferPointer<bo_json_node>

    /// The children of an object or array node, as node indices.
    func children(of index: Int) -> ChildIndices { ChildIndices(document: self, parent: index) }

    func type(_ i: Int) -> Int32 { nodes[i].type }

    /// The key bytes of a node whose parent is an object.
    func key(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: nodes[i].key, count: Int(nodes[i].key_length))
    }

    func keyString(_ i: Int) -> String { String(decoding: key(i), as: UTF8.self) }

    /// The bytes of a string node.
    func stringBytes(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: nodes[i].string, count: Int(nodes[i].string_length))
    }

    func string(_ i: Int) -> String { String(decoding: stringBytes(i), as: UTF8.self) }

    /// An integer value: JSON integers, and numbers like 120.0 that are whole.
    func integer(_ i: Int) -> Int64? {
        switch UInt32(nodes[i].type) {
        case BO_JSON_INT64.rawValue: return nodes[i].int64
        case BO_JSON_UINT64.rawValue: return nodes[i].uint64 <= UInt64(Int64.max) ? Int64(nodes[i].uint64) : nil
        case BO_JSON_DOUBLE.rawValue:
            let d = nodes[i].number
            return d == d.rounded() && abs(d) < 9.0e15 ? Int64(d) : nil
        default: return nil
        }
    }

    /// What a node that `integer` refused is, for "must be an integer, not …": its JSON type,
    /// or why a number is not one (a JSON integer beyond Int64 was "an integer").
    func notAnInteger(_ i: Int) -> String {
        switch UInt32(nodes[i].type) {
        case BO_JSON_UINT64.rawValue: "\(nodes[i].uint64), which is beyond the largest integer (9223372036854775807)"
        case BO_JSON_DOUBLE.rawValue:
            nodes[i].number == nodes[i].number.rounded() ? "\(nodes[i].number), a number too large to be an exact integer" : "a number with a fraction (\(nodes[i].number))"
        default: type(i).jsonTypeName
        }
    }

    func number(_ i: Int) -> Double? {
        switch UInt32(nodes[i].type) {
        case BO_JSON_INT64.rawValue, BO_JSON_UINT64.rawValue, BO_JSON_DOUBLE.rawValue: return nodes[i].number
        default: return nil
        }
    }

    struct ChildIndices: Sequence, IteratorProtocol {
        let document: JSONDocument
        let parent: Int
        var cursor: Int
        var remaining: Int

        init(document: JSONDocument, parent: Int) {
            self.document = document
            self.parent = parent
            self.cursor = parent + 1
            self.remaining = Int(document.nodes[parent].child_count)
        }

        mutating func next() -> Int? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let current = cursor
            cursor = Int(document.nodes[current].next)
            return current
        }
    }
}

extension Int32 {
    /// Human name of a simdjson node type, for error messages.
    var jsonTypeName: String {
        switch UInt32(self) {
        case BO_JSON_OBJECT.rawValue: "an object"
        case BO_JSON_ARRAY.rawValue: "an array"
        case BO_JSON_STRING.rawValue: "a string"
        case BO_JSON_INT64.rawValue, BO_JSON_UINT64.rawValue: "an integer"
        case BO_JSON_DOUBLE.rawValue: "a number"
        case BO_JSON_TRUE.rawValue, BO_JSON_FALSE.rawValue: "a boolean"
        default: "null"
        }
    }
}
