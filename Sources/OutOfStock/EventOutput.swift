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
        let lineStart = out.count
        JSONText.appendLiteral(#"{"id":""#, to: &out)
        event.id.appendText(to: &out)
        JSONText.appendLiteral(#"","type":"#, to: &out)
        JSONText.appendString(event.type, to: &out)
        JSONText.appendLiteral(#","tenant":"#, to: &out)
        JSONText.appendString(event.tenant, to: &out)
        JSONText.appendLiteral(#","at":""#, to: &out)
        Timestamp.appendExact(event.businessTime, to: &out)
        JSONText.appendLiteral(#"","actor":"#, to: &out)
        JSONText.appendString(event.actor, to: &out)
        if let correlation = event.correlationId {
            JSONText.appendLiteral(#","correlationId":"#, to: &out)
            JSONText.appendString(correlation, to: &out)
        }
        do {
            try event.data.withUnsafeBytes { try StoredDataJSON.append($0, type: event.type, schemaVersion: event.schemaVersion, to: &out) }
        } catch {
            out.removeSubrange(lineStart...)
            throw EventStoreError.malformedEvent(event.position, "its data does not decode as \(event.type) version \(event.schemaVersion): \(error)")
        }
        JSONText.appendLiteral(#","position":""#, to: &out)
        JSONText.appendInteger(Int64(event.position.partition), to: &out)
        out.append(UInt8(ascii: ":"))
        JSONText.appendInteger(event.position.offset, to: &out)
        JSONText.appendLiteral(#"","version":"#, to: &out)
        JSONText.appendInteger(event.streamVersion, to: &out)
        JSONText.appendLiteral(#","recordedAt":""#, to: &out)
        Timestamp.appendExact(event.recordedTime, to: &out)
        JSONText.appendLiteral(#""}"#, to: &out)
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
        text.withUTF8 { appendValidUTF8(UnsafeRawBufferPointer($0), to: &out) }
    }

    /// Appends stored UTF-8 bytes as a JSON string; invalid sequences (which validated
    /// input never stores) become U+FFFD, as `String(decoding:as:)` makes them.
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        if bytes.allSatisfy({ $0 < 0x80 }) {
            appendValidUTF8(bytes, to: &out)
        } else {
            appendString(String(decoding: bytes, as: UTF8.self), to: &out)
        }
    }

    private static func appendValidUTF8(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Runs of plain bytes are copied whole; only the bytes JSON escapes are handled one by one.
        var start = 0
        for i in 0..<bytes.count {
            let byte = bytes[i]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            appendEscape(byte, to: &out)
            start = i + 1
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        out.append(UInt8(ascii: "\""))
    }

    /// Appends a literal's bytes (a copy, not a walk of a `String`'s UTF-8 view).
    @inline(__always)
    public static func appendLiteral(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
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
