/// Little-endian fixed-width fields and LEB128 varints: the two encodings of the format.
///
/// Everything on disk is little-endian (see docs/FORMAT.md). These helpers read and write
/// unaligned fields; callers check bounds before they call (the framing code does).
public enum ByteCoding {
    @inline(__always)
    package static func load<T: FixedWidthInteger>(_ type: T.Type, from base: UnsafeRawPointer, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inline(__always)
    package static func store<T: FixedWidthInteger>(_ value: T, to base: UnsafeMutableRawPointer, at offset: Int) {
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// Appends `value` as an unsigned LEB128 varint.
    @inlinable
    public static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends a varint length and the text's UTF-8 bytes.
    @inlinable
    public static func appendString(_ text: String, to bytes: inout [UInt8]) {
        appendVarint(UInt64(text.utf8.count), to: &bytes)
        bytes.append(contentsOf: text.utf8)
    }

    /// Bytes as lowercase hex digits, two per byte.
    public static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The bytes of an even number of hex digits (either case); nil for anything else.
    public static func bytes(hex: some StringProtocol) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// The value of one hexadecimal digit (either case), or nil.
    public static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Zig-zag encoding maps small negative numbers to small unsigned ones.
    @inline(__always)
    package static func zigZag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    @inline(__always)
    package static func unZigZag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

    /// Reads an unsigned varint at `position`, advancing it; nil when the varint runs past
    /// `end` or is longer than 10 bytes (malformed).
    @inline(__always)
    package static func readVarint(_ base: UnsafeRawPointer, _ position: inout Int, end: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < end {
            let byte = base.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }
}

/// A bounds-checked reader over bytes: every read returns nil instead of running past
/// the end (the event envelope, the JetStream id cache).
@frozen
public struct ByteReader {
    /// The bytes read.
    public let bytes: UnsafeRawBufferPointer
    /// The offset of the next byte to read.
    public var position = 0

    /// A reader from the first byte.
    @inlinable
    public init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// One byte.
    @inlinable
    public mutating func byte() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    /// A big-endian u64.
    @inlinable
    public mutating func bigEndian() -> UInt64? {
        guard position + 8 <= bytes.count else { return nil }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[position + i]) }
        position += 8
        return value
    }

    /// A little-endian fixed-width integer.
    @inlinable
    public mutating func littleEndian<T: FixedWidthInteger>(_ type: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard position >= 0, position + size <= bytes.count else { return nil }
        var value: T = 0
        for k in 0..<size { value |= T(truncatingIfNeeded: bytes[position + k]) << (8 * k) }
        position += size
        return value
    }

    /// An unsigned LEB128 varint (at most 10 bytes).
    @inlinable
    public mutating func varint() -> UInt64? {
        var result: UInt64 = 0, shift: UInt64 = 0
        while position < bytes.count && shift < 64 {
            let b = bytes[position]
            position += 1
            if shift == 63 && b > 1 { return nil }  // more than 64 bits
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// A varint length and that many bytes of UTF-8 (invalid sequences repaired).
    @inlinable
    public mutating func string() -> String? {
        guard let length = varint(), position <= bytes.count, length <= UInt64(bytes.count - position) else { return nil }
        defer { position += Int(length) }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(length))]), as: UTF8.self)
    }
}
