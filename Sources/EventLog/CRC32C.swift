import CCRC32C

/// CRC32C (Castagnoli), the checksum of every batch, recovery point and manifest.
///
/// Hardware accelerated (SSE4.2) where the CPU allows, with a portable fallback.
public enum CRC32C {
    /// The checksum of `bytes`, or its continuation from `crc` when checksumming in pieces.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return backorder_crc32c_extend(crc, base, bytes.count)
    }

    /// The checksum of a byte collection that has contiguous storage.
    public static func checksum<Bytes: Collection<UInt8>>(_ bytes: Bytes, continuing crc: UInt32 = 0) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), continuing: crc) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Whether the SSE4.2 instruction is in use.
    public static var isHardwareAccelerated: Bool { backorder_crc32c_is_hardware() != 0 }
}
