import EventLog
import Testing
@testable import EventStore
@testable import OutOfStock

/// `read` and `consume` write stored data straight from its encoding (`StoredDataJSON`);
/// the output must be the bytes that decoding it (`EventData.decode`) then writing it
/// (`EventOutput.appendObject`) gives — and damaged data must be refused by both.
@Suite struct StoredDataJSONTests {
    /// Deterministic, so that a failure names a case that comes back.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            return SplitMix.finalize(state)
        }
    }

    /// What decoding then writing gives; nil when decoding refuses the data.
    func decodedThenWritten(_ bytes: [UInt8], type: String, schemaVersion: Int) -> [UInt8]? {
        guard let data = try? EventData.decode(bytes, type: type, schemaVersion: schemaVersion) else { return nil }
        var out = Array(#","data":"#.utf8)
        EventOutput.appendObject(data, fields: Field.producerFields, to: &out)
        if Field.derivedFields.contains(where: { data[$0] != nil }) {
            out += Array(#","derived":"#.utf8)
            EventOutput.appendObject(data, fields: Field.derivedFields, to: &out)
        }
        return out
    }

    func writtenInPlace(_ bytes: [UInt8], type: String, schemaVersion: Int) -> [UInt8]? {
        var out: [UInt8] = []
        do { try bytes.withUnsafeBytes { try StoredDataJSON.append($0, type: type, schemaVersion: schemaVersion, to: &out) } } catch { return nil }
        return out
    }

    func text(_ random: inout Generator) -> String {
        let pieces = ["R-1", "naïve", "\"quoted\"", "back\\slash", "tab\there", "line\nbreak", "\u{01}", "日本語", "🙂", "", "plain text"]
        return (0..<Int.random(in: 0...3, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }

    func value(_ random: inout Generator) -> FieldValue {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: .string(text(&random))
        case 1: .integer(Int64.random(in: -1_000_000_000...1_000_000_000, using: &random))
        case 2: .number([0, -0.0, 18.5, 0.1, 1e21, 123_456.789].randomElement(using: &random)!)
        default: .strings((0..<Int.random(in: 0...3, using: &random)).map { _ in text(&random) })
        }
    }

    @Test func storedDataIsWrittenAsDecodingThenWritingWould() {
        var random = Generator(state: 42)
        let types: [(String, Int)] = [("OutOfStockReported", 2), ("OutOfStockReported", 1), ("OutOfStockAmended", 1),
                                      ("CustomerRegistered", 1), ("ProductUpdated", 1), ("OutOfStockReported", 3), ("NoSuchType", 1)]
        var compared = 0, refused = 0
        for round in 0..<4_000 {
            // Any field with any kind of value (the encoding does not enforce the schema).
            var data = EventData()
            for field in Field.allCases where Bool.random(using: &random) { data[field] = value(&random) }
            var bytes = data.encoded()
            // A repeated field (the last wins), an unknown field number, invalid UTF-8.
            if round % 5 == 0 { bytes += EventData.encodedField(.recordId, value(&random)) }
            if round % 7 == 0 { bytes += [0xFA, 2, 0x78, 0x79] }
            if round % 11 == 0 { bytes += [0x0A, 2, 0xC3, 0x28] }
            // Damage: truncated, a byte changed.
            if round % 3 == 1, !bytes.isEmpty { bytes.removeLast(Int.random(in: 1...bytes.count, using: &random)) }
            if round % 3 == 2, !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
            let (type, version) = types.randomElement(using: &random)!
            let expected = decodedThenWritten(bytes, type: type, schemaVersion: version)
            let actual = writtenInPlace(bytes, type: type, schemaVersion: version)
            #expect(actual == expected, "round \(round), \(type) v\(version), bytes \(bytes): \(actual.map { String(decoding: $0, as: UTF8.self) } ?? "refused") against \(expected.map { String(decoding: $0, as: UTF8.self) } ?? "refused")")
            if expected == nil { refused += 1 } else { compared += 1 }
        }
        // Both kinds of case were met.
        #expect(compared > 1_000 && refused > 500, "\(compared) written, \(refused) refused")
    }
}

extension EventData {
    /// One field's encoding alone.
    static func encodedField(_ field: Field, _ value: FieldValue) -> [UInt8] {
        var data = EventData()
        data[field] = value
        return data.encoded()
    }
}
