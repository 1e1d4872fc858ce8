import EventStore

/// A stored event as one NDJSON line of `backorder read` (docs/CONSUMERS.md): the input
/// contract's envelope — so that `backorder append` takes the line back — followed by what
/// the store knows of it:
///
/// `{"id","type","tenant","at","actor"[,"correlationId"],"data"[,"derived"],"position","version","recordedAt"}`
///
/// `data` holds the fields the producer sent; `derived` the ones the store added (a report's
/// customer and product names as they were). `at` and `recordedAt` are exact to the
/// microsecond; `position` is `partition:offset` (on JetStream, offset = stream sequence − 1).
/// Written into a byte buffer without a `String` per field: reading out is a bulk path.
public enum EventOutput {
    /// Appends the event's line, without the newline. Throws `malformedEvent` when its data
    /// does not decode.
    public static func appendLine(_ event: StoredEvent, to out: inout [UInt8]) throws {
        let data: EventData
        do { data = try EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion) } catch {
            throw EventStoreError.malformedEvent(event.position, "its data does not decode as \(event.type) version \(event.schemaVersion): \(error)")
        }
        out.append(contentsOf: #"{"id":""#.utf8)
        event.id.appendText(to: &out)
        out.append(contentsOf: #"","type":"#.utf8)
        JSONText.appendString(event.type, to: &out)
        out.append(contentsOf: #","tenant":"#.utf8)
        JSONText.appendString(event.tenant, to: &out)
        out.append(contentsOf: #","at":""#.utf8)
        Timestamp.appendExact(event.businessTime, to: &out)
        out.append(contentsOf: #"","actor":"#.utf8)
        JSONText.appendString(event.actor, to: &out)
        if let correlation = event.correlationId {
            out.append(contentsOf: #","correlationId":"#.utf8)
            JSONText.appendString(correlation, to: &out)
        }
        out.append(contentsOf: #","data":"#.utf8)
        appendObject(data, fields: Field.producerFields, to: &out)
        if Field.derivedFields.contains(where: { data[$0] != nil }) {
            out.append(contentsOf: #","derived":"#.utf8)
            appendObject(data, fields: Field.derivedFields, to: &out)
        }
        out.append(contentsOf: #","position":""#.utf8)
        out.append(contentsOf: event.position.description.utf8)
        out.append(contentsOf: #"","version":"#.utf8)
        JSONText.appendInteger(event.streamVersion, to: &out)
        out.append(contentsOf: #","recordedAt":""#.utf8)
        Timestamp.appendExact(event.recordedTime, to: &out)
        out.append(contentsOf: #""}"#.utf8)
    }

    /// Appends `fields` of `data` (those present, in the order given) as a JSON object.
    public static func appendObject(_ data: EventData, fields: [Field], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for field in fields {
            guard let value = data[field] else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONText.appendString(field.name, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case let .string(text):
                JSONText.appendString(text, to: &out)
            case let .integer(number):
                JSONText.appendInteger(number, to: &out)
            case let .number(number):
                // Input numbers are finite JSON numbers; Swift prints the shortest exact form.
                out.append(contentsOf: (number.isFinite ? String(number) : "null").utf8)
            case let .strings(list):
                out.append(UInt8(ascii: "["))
                for (i, text) in list.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    JSONText.appendString(text, to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// JSON string literals written as bytes.
public enum JSONText {
    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped,
    /// everything else as its UTF-8.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        var text = text
        out.append(UInt8(ascii: "\""))
        text.withUTF8 { bytes in
            // Runs of plain bytes are copied whole; only the bytes JSON escapes are handled one by one.
            var start = 0
            for i in 0..<bytes.count {
                let byte = bytes[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
                appendEscape(byte, to: &out)
                start = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends an integer's decimal digits (no `String` made).
    public static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var magnitude = value.magnitude, at = 20
            repeat {
                at -= 1
                digits[at] = UInt8(ascii: "0") &+ UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { out.append(UInt8(ascii: "-")) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[at..<20]))
        }
    }

    private static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { digits in
                out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), digits[Int(byte >> 4)], digits[Int(byte & 15)]])
            }
        }
    }
}
