import EventLog

/// A small writer and bounds-checked reader (zigzag varints, strings, little-endian 32-bit
/// lengths) for what the ingest keeps aside: its scratch store's states and its spill file.
struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    /// An empty writer.
    init() {}

    /// A writer that appends to `bytes`, which it takes over (`bytes` is left empty) —
    /// without copying them; hand them back with `finish(into:)`.
    init(appendingTo bytes: inout [UInt8]) { swap(&self.bytes, &bytes) }

    /// Hands the bytes written back to `bytes` (the writer is left empty).
    mutating func finish(into bytes: inout [UInt8]) { swap(&self.bytes, &bytes) }

    /// A 32-bit little-endian placeholder, for a length known only later (`patch32`).
    mutating func placeholder32() -> Int {
        for _ in 0..<4 { bytes.append(0) }
        return bytes.count - 4
    }

    /// Writes `value` over the placeholder at `offset`.
    mutating func patch32(at offset: Int, _ value: UInt32) {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "a 32-bit patch at \(offset) of \(bytes.count) bytes")
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { preconditionFailure("no bytes under a 32-bit patch") }
            ByteCoding.store(value, to: base, at: offset)
        }
    }

    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    mutating func int(_ v: Int64) { ByteCoding.appendVarint(ByteCoding.zigZag(v), to: &bytes) }

    mutating func string(_ s: String) {
        int(Int64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    mutating func optionalString(_ s: String?) {
        if let s { bytes.append(1); string(s) } else { bytes.append(0) }
    }

    mutating func strings(_ list: [String]) {
        int(Int64(list.count))
        for s in list { string(s) }
    }

    mutating func bool(_ b: Bool) { bytes.append(b ? 1 : 0) }
}

struct BinaryReader {
    let bytes: [UInt8]
    var at = 0
    /// Where the bytes to read end (the array may go on).
    let end: Int

    /// Reads `bytes` whole.
    init(bytes: [UInt8]) {
        self.bytes = bytes
        self.end = bytes.count
    }

    /// Reads `bytes[at..<end]` (without copying them).
    init(bytes: [UInt8], at: Int, end: Int) {
        precondition(0 <= at && at <= end && end <= bytes.count, "BinaryReader: range \(at)..<\(end) outside \(bytes.count) bytes")
        self.bytes = bytes
        self.at = at
        self.end = end
    }

    struct Truncated: Error {}

    mutating func int() throws -> Int64 {
        var result: UInt64 = 0, shift: UInt64 = 0
        while at < end && shift < 64 {
            let b = bytes[at]
            at += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return ByteCoding.unZigZag(result) }
            shift += 7
        }
        throw Truncated()
    }

    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0 && n <= Int64(end - at) else { throw Truncated() }
        return Int(n)
    }

    mutating func string() throws -> String {
        let n = try count()
        defer { at += n }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }

    mutating func optionalString() throws -> String? { try bool() ? try string() : nil }

    /// A 32-bit little-endian value.
    mutating func fixed32() throws -> UInt32 {
        guard end - at >= 4 else { throw Truncated() }
        defer { at += 4 }
        return bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { preconditionFailure("no bytes under a 32-bit read") }
            return ByteCoding.load(UInt32.self, from: base, at: at)
        }
    }

    mutating func strings() throws -> [String] {
        let n = try count()
        return try (0..<n).map { _ in try string() }
    }

    mutating func bool() throws -> Bool {
        guard at < end else { throw Truncated() }
        defer { at += 1 }
        return bytes[at] != 0
    }
}
