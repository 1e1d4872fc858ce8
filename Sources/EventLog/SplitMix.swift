/// SplitMix64's finalizer: every input bit affects every output bit. Hashes stored on disk
/// (stream hashes in the event index, bloom filters of key-value files) are built from
/// it, so it must give the same bits in every process and every build: changing it
/// changes those formats.
public enum SplitMix {
    @inlinable @inline(__always)
    public static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
