/// A small little-endian writer and bounds-checked reader for view snapshots.
struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    mutating func int(_ v: Int64) {
        var z = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        while z >= 0x80 { bytes.append(UInt8(truncatingIfNeeded: z) | 0x80); z >>= 7 }
        bytes.append(UInt8(z))
    }

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

    struct Truncated: Error {}

    mutating func int() throws -> Int64 {
        var result: UInt64 = 0, shift: UInt64 = 0
        while at < bytes.count && shift < 64 {
            let b = bytes[at]
            at += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return Int64(bitPattern: result >> 1) ^ -Int64(bitPattern: result & 1) }
            shift += 7
        }
        throw Truncated()
    }

    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0 && n <= Int64(bytes.count - at) else { throw Truncated() }
        return Int(n)
    }

    mutating func string() throws -> String {
        let n = try count()
        defer { at += n }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }

    mutating func optionalString() throws -> String? { try bool() ? try string() : nil }

    mutating func strings() throws -> [String] {
        let n = try count()
        return try (0..<n).map { _ in try string() }
    }

    mutating func bool() throws -> Bool {
        guard at < bytes.count else { throw Truncated() }
        defer { at += 1 }
        return bytes[at] != 0
    }
}
