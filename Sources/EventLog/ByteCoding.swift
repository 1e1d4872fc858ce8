/// Little-endian fixed-width fields and LEB128 varints: the two encodings of the format.
///
/// Everything on disk is little-endian (see docs/FORMAT.md). These helpers read and write
/// unaligned fields; callers check bounds before they call (the framing code does).
public enum ByteCoding {
    @inline(__always)
    static func load<T: FixedWidthInteger>(_ type: T.Type, from base: UnsafeRawPointer, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inline(__always)
    static func store<T: FixedWidthInteger>(_ value: T, to base: UnsafeMutableRawPointer, at offset: Int) {
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

    /// Zig-zag encoding maps small negative numbers to small unsigned ones.
    @inline(__always)
    static func zigZag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    @inline(__always)
    static func unZigZag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

    /// Reads an unsigned varint at `position`, advancing it; nil when the varint runs past
    /// `end` or is longer than 10 bytes (malformed).
    @inline(__always)
    static func readVarint(_ base: UnsafeRawPointer, _ position: inout Int, end: Int) -> UInt64? {
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
