import EventLog

/// The event index's rows (docs/EVENTS.md, "Indexes"), written by `StoreIndex` and read
/// by it and by readers beside a writer (`EventReader.readStream`). Keys: a tag byte, then
/// little-endian 64-bit words — two for a stream head and for an id under its whole scoped
/// id, one for an id under its short key (`ScopedID.shortKey`). Values: unsigned LEB128
/// varints.
enum IndexRow {
    /// A key of a tag and two words.
    static let keyBytes = 17
    /// A key of a tag and one word.
    static let shortKeyBytes = 9
    /// `s` + `StreamHash` → offset and version of the stream's last event.
    static let streamTag = UInt8(ascii: "s"), streamFields = 2
    /// `i` + `ScopedID.shortKey` → partition, offset and stream version of the first event
    /// stored with that short key. 64 bits tell ids apart nearly always, and the event
    /// itself tells for sure: a lookup reads the id at that position.
    static let idTag = UInt8(ascii: "i"), idFields = 3
    /// `I` + the whole `ScopedID` → the same fields, for an id whose short key an earlier
    /// stored id already holds (among a million random ids, some pair shares a short key
    /// with probability ~3 × 10⁻⁸; a client can also make such ids on purpose).
    static let fullIDTag = UInt8(ascii: "I")

    static func writeKey(_ tag: UInt8, _ a: UInt64, _ b: UInt64, into key: UnsafeMutableRawBufferPointer) {
        precondition(key.count == keyBytes, "index key buffer of \(key.count) bytes")
        key[0] = tag
        key.storeBytes(of: a.littleEndian, toByteOffset: 1, as: UInt64.self)
        key.storeBytes(of: b.littleEndian, toByteOffset: 9, as: UInt64.self)
    }

    static func writeShortKey(_ tag: UInt8, _ a: UInt64, into key: UnsafeMutableRawBufferPointer) {
        precondition(key.count == shortKeyBytes, "short index key buffer of \(key.count) bytes")
        key[0] = tag
        key.storeBytes(of: a.littleEndian, toByteOffset: 1, as: UInt64.self)
    }

    /// Appends a key to `keys` (keys back to back, for `KVStore.withValues`).
    static func appendKey(_ tag: UInt8, _ a: UInt64, _ b: UInt64, to keys: inout [UInt8]) {
        keys.append(tag)
        withUnsafeBytes(of: a.littleEndian) { keys.append(contentsOf: $0) }
        withUnsafeBytes(of: b.littleEndian) { keys.append(contentsOf: $0) }
    }

    /// Appends a short key to `keys`.
    static func appendShortKey(_ tag: UInt8, _ a: UInt64, to keys: inout [UInt8]) {
        keys.append(tag)
        withUnsafeBytes(of: a.littleEndian) { keys.append(contentsOf: $0) }
    }

    /// The key of a stream's head row.
    static func streamKey(_ stream: StreamHash) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: keyBytes)
        key.withUnsafeMutableBytes { writeKey(streamTag, stream.k0, stream.k1, into: $0) }
        return key
    }

    /// Bytes a value can take: three varints of at most 10 bytes.
    static let maxValueBytes = 30

    /// Replaces `value` with `fields` (2 or 3) as unsigned LEB128 varints (the log's
    /// `ByteCoding.appendVarint`) — partitions, offsets and versions are small, so a value
    /// takes 4 to 6 bytes instead of 16 or 24. A negative field is a broken invariant.
    static func encodeValue(_ f0: Int64, _ f1: Int64, _ f2: Int64?, into value: inout [UInt8]) {
        func append(_ field: Int64) {
            precondition(field >= 0, "index field \(field) is negative")
            ByteCoding.appendVarint(UInt64(field), to: &value)
        }
        value.removeAll(keepingCapacity: true)
        append(f0)
        append(f1)
        if let f2 { append(f2) }
    }

    /// A row's fields (a third of 0 for a two-field row); nil when the row is not exactly
    /// `count` varints of non-negative 64-bit integers, which only damage makes.
    static func fields(_ row: UnsafeRawBufferPointer, count: Int) -> (Int64, Int64, Int64)? {
        guard let base = row.baseAddress, row.count >= count else { return nil }
        var position = 0
        var values: (Int64, Int64, Int64) = (0, 0, 0)
        for n in 0..<count {
            guard let v = ByteCoding.readVarint(base, &position, end: row.count), v <= UInt64(Int64.max) else { return nil }
            switch n {
            case 0: values.0 = Int64(v)
            case 1: values.1 = Int64(v)
            default: values.2 = Int64(v)
            }
        }
        return position == row.count ? values : nil
    }
}
