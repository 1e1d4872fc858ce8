import EventLog

/// The event index's rows (docs/EVENTS.md, "Indexes"), written by `StoreIndex` and read
/// by it and by readers beside a writer (`EventReader.readStream`): a 17-byte key — a tag,
/// then two little-endian 64-bit words — and a value of little-endian 64-bit integers.
enum IndexRow {
    static let keyBytes = 17
    /// `s` + `StreamHash` → offset and version of the stream's last event.
    static let streamTag = UInt8(ascii: "s"), streamFields = 2
    /// `i` + event id → partition, offset and stream version.
    static let idTag = UInt8(ascii: "i"), idFields = 3

    static func writeKey(_ tag: UInt8, _ a: UInt64, _ b: UInt64, into key: UnsafeMutableRawBufferPointer) {
        precondition(key.count == keyBytes, "index key buffer of \(key.count) bytes")
        key[0] = tag
        key.storeBytes(of: a.littleEndian, toByteOffset: 1, as: UInt64.self)
        key.storeBytes(of: b.littleEndian, toByteOffset: 9, as: UInt64.self)
    }

    /// The key of a stream's head row.
    static func streamKey(_ stream: StreamHash) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: keyBytes)
        key.withUnsafeMutableBytes { writeKey(streamTag, stream.k0, stream.k1, into: $0) }
        return key
    }

    /// Writes `fields` (2 or 3) into `value`; returns the row's length.
    static func writeValue(_ f0: Int64, _ f1: Int64, _ f2: Int64?, into value: UnsafeMutableRawBufferPointer) -> Int {
        precondition(value.count >= 24, "index value buffer of \(value.count) bytes")
        value.storeBytes(of: f0.littleEndian, toByteOffset: 0, as: Int64.self)
        value.storeBytes(of: f1.littleEndian, toByteOffset: 8, as: Int64.self)
        guard let f2 else { return 16 }
        value.storeBytes(of: f2.littleEndian, toByteOffset: 16, as: Int64.self)
        return 24
    }

    /// A row's fields (a third of 0 for a two-field row); nil when the row is not
    /// `count` fields long, which only damage makes.
    static func fields(_ row: UnsafeRawBufferPointer, count: Int) -> (Int64, Int64, Int64)? {
        guard row.count == count * 8 else { return nil }
        func field(_ n: Int) -> Int64 { n < count ? Int64(littleEndian: row.loadUnaligned(fromByteOffset: n * 8, as: Int64.self)) : 0 }
        return (field(0), field(1), field(2))
    }
}
