import EventLog

/// Stored event data written as JSON straight from its encoding (docs/EVENTS.md, "Data
/// encoding"), with no `EventData`, `String` or array per field: `read` and `consume` write
/// every stored event this way. The rules are `EventData.decode`'s, so the output is the
/// same as decoding then writing: unknown field numbers are skipped, a repeated field's last
/// value wins, a value is written as its wire type says, and the names that schema version 1
/// of a report or an amendment did not keep are left out (the upcast).
enum StoredDataJSON {
    private static let fieldSlots = Field.allCases.count + 1
    /// `"name":` of each field, by field number.
    private static let keys: [[UInt8]] = (0..<fieldSlots).map { number in
        Field(rawValue: UInt8(number)).map { Array("\"\($0.name)\":".utf8) } ?? []
    }

    /// Appends `,"data":{…}` and, when the store added fields, `,"derived":{…}`.
    /// Throws `InputError` naming what is wrong when the data does not decode.
    static func append(_ data: UnsafeRawBufferPointer, type: String, schemaVersion: Int, to out: inout [UInt8]) throws {
        _ = try Upcaster.storedType(type, schemaVersion: schemaVersion)
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: fieldSlots) { tags in
            tags.initialize(repeating: -1)
            try locate(data, type: type, into: tags)
            if Upcaster.dropsDerivedNames(type: type, from: schemaVersion) {
                for field in Field.derivedFields { tags[Int(field.rawValue)] = -1 }
            }
            JSONText.appendLiteral(#","data":"#, to: &out)
            appendObject(data, tags, fields: Field.producerFields, to: &out)
            if Field.derivedFields.contains(where: { tags[Int($0.rawValue)] >= 0 }) {
                JSONText.appendLiteral(#","derived":"#, to: &out)
                appendObject(data, tags, fields: Field.derivedFields, to: &out)
            }
        }
    }

    /// Sets `tags[n]` to the offset of the last tag byte of field number `n`; checks that
    /// every value is whole.
    private static func locate(_ data: UnsafeRawBufferPointer, type: String, into tags: UnsafeMutableBufferPointer<Int>) throws {
        guard let base = data.baseAddress else { return }
        let end = data.count
        var p = 0
        func fail(_ reason: String) -> InputError { InputError(line: 0, field: "data", message: "\(reason) in stored \(type)") }
        func skipBytes() throws {
            guard let n = ByteCoding.readVarint(base, &p, end: end), n <= UInt64(end - p) else { throw fail("length runs past the data") }
            p += Int(n)
        }
        while p < end {
            let at = p
            let tag = base.load(fromByteOffset: p, as: UInt8.self)
            p += 1
            switch tag & 7 {
            case 0:
                guard ByteCoding.readVarint(base, &p, end: end) != nil else { throw fail("truncated varint") }
            case 1:
                guard p + 8 <= end else { throw fail("truncated number") }
                p += 8
            case 2:
                try skipBytes()
            case 3:
                guard let n = ByteCoding.readVarint(base, &p, end: end), n <= UInt64(end - p) else { throw fail("length runs past the data") }
                for _ in 0..<n { try skipBytes() }
            default:
                throw fail("unknown wire type \(tag & 7)")
            }
            let field = Int(tag >> 3)
            if field >= 1 && field < tags.count { tags[field] = at }
        }
    }

    private static func appendObject(_ data: UnsafeRawBufferPointer, _ tags: UnsafeMutableBufferPointer<Int>, fields: [Field], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for field in fields {
            let at = tags[Int(field.rawValue)]
            guard at >= 0 else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            keys[Int(field.rawValue)].withUnsafeBufferPointer { out.append(contentsOf: $0) }
            appendValue(data, at: at, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Writes the value whose tag byte is at `at` (`locate` has checked that it is whole).
    private static func appendValue(_ data: UnsafeRawBufferPointer, at: Int, to out: inout [UInt8]) {
        let base = data.baseAddress!, end = data.count
        var p = at + 1
        func varint() -> UInt64 {
            guard let v = ByteCoding.readVarint(base, &p, end: end) else { preconditionFailure("a value located whole reads whole") }
            return v
        }
        func text() {
            let n = Int(varint())
            JSONText.appendString(UnsafeRawBufferPointer(start: base + p, count: n), to: &out)
            p += n
        }
        switch data[at] & 7 {
        case 0:
            let v = varint()
            JSONText.appendInteger(ByteCoding.unZigZag(v), to: &out)
        case 1:
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(data[p + k]) << UInt64(8 * k) }
            // -0 is written as 0, as `EventData.decode` reads it.
            let stored = Double(bitPattern: bits), number = stored == 0 ? 0 : stored
            // Input numbers are finite JSON numbers; Swift prints the shortest exact form.
            out.append(contentsOf: (number.isFinite ? String(number) : "null").utf8)
        case 2:
            text()
        default:
            let count = varint()
            out.append(UInt8(ascii: "["))
            for i in 0..<count {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                text()
            }
            out.append(UInt8(ascii: "]"))
        }
    }
}
