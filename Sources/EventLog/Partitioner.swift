/// Chooses a record's partition from its key with a hash that never changes across
/// versions, machines or processes (FNV-1a, 64 bit), so that one key's records always
/// land in the same partition and stay in order there.
public enum Partitioner {
    /// The FNV-1a 64-bit hash of `key`.
    @inlinable
    public static func hash<Key: Sequence<UInt8>>(_ key: Key) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// The partition, in `0..<partitionCount`, of a record with `key`.
    @inlinable
    public static func partition<Key: Sequence<UInt8>>(forKey key: Key, partitionCount: Int) -> Int {
        precondition(partitionCount > 0, "a log has at least one partition")
        return Int(hash(key) % UInt64(partitionCount))
    }
}
