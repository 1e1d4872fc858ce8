import EventLog

/// Writes a view row: zig-zag varints for integers, varint-length UTF-8 for text.
struct RowWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    /// A writer appending to `bytes` (give it back with `take()`; no copy while it is held).
    init(taking bytes: [UInt8]) { self.bytes = bytes }

    mutating func take() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    mutating func byte(_ v: UInt8) { bytes.append(v) }
    mutating func int(_ v: Int64) { ByteCoding.appendVarint(ByteCoding.zigZag(v), to: &bytes) }
    mutating func text(_ s: String) { ByteCoding.appendString(s, to: &bytes) }
    mutating func optionalText(_ s: String?) {
        if let s { bytes.append(1); text(s) } else { bytes.append(0) }
    }
    mutating func texts(_ list: [String]) {
        int(Int64(list.count))
        for s in list { text(s) }
    }
}

/// Reads what `RowWriter` wrote; every read fails (nil) rather than run past the end, and
/// the caller turns that into an error naming the row.
struct RowReader {
    private var reader: ByteReader

    init(_ bytes: UnsafeRawBufferPointer) { reader = ByteReader(bytes: bytes) }

    var isAtEnd: Bool { reader.position == reader.bytes.count }

    mutating func byte() throws -> UInt8 {
        guard let b = reader.byte() else { throw RowDamage() }
        return b
    }

    mutating func int() throws -> Int64 {
        guard let v = reader.varint() else { throw RowDamage() }
        return ByteCoding.unZigZag(v)
    }

    mutating func text() throws -> String {
        guard let s = reader.string() else { throw RowDamage() }
        return s
    }

    mutating func optionalText() throws -> String? { try byte() == 0 ? nil : try text() }

    mutating func texts() throws -> [String] {
        let n = try int()
        guard n >= 0 && n <= 10_000 else { throw RowDamage() }
        return try (0..<n).map { _ in try text() }
    }
}

/// A row that does not decode (damaged, or written by another version of the view).
struct RowDamage: Error {}
