/// A bloom filter over the keys of one table file (docs/KVSTORE.md, "Filter block"): a
/// point lookup skips a file whose filter says the key is not there. Bits, then one byte
/// with the number of probes. Probes are derived from the key's 64-bit `KeyHash` by double
/// hashing (each probe's bit is the high 32 bits of the hash scaled to the bit count), so a
/// stored filter reads the same in every process.
enum BloomFilter {
    /// The filter of keys with these hashes.
    static func build(hashes: [UInt64], bitsPerKey: Int) -> [UInt8] {
        let probes = max(1, min(30, Int(Double(bitsPerKey) * 0.69)))
        let bits = max(64, hashes.count * bitsPerKey)
        let bytes = (bits + 7) / 8
        var filter = [UInt8](repeating: 0, count: bytes + 1)
        let bitCount = UInt64(bytes * 8)
        filter.withUnsafeMutableBufferPointer { out in
            for hash in hashes {
                var h = hash
                let delta = (h >> 33) | (h << 31)
                for _ in 0..<probes {
                    let bit = Int((h >> 32) &* bitCount >> 32)
                    out[bit >> 3] |= 1 << UInt8(bit & 7)
                    h &+= delta
                }
            }
        }
        filter[bytes] = UInt8(probes)
        return filter
    }

    /// Whether the key with this hash may be in the set (false: certainly not).
    static func mayContain(_ filter: UnsafeRawBufferPointer, hash: UInt64) -> Bool {
        guard filter.count >= 2 else { return true }
        let probes = Int(filter[filter.count - 1])
        // Unknown encodings (more probes than we write) are treated as "may contain".
        guard probes >= 1 && probes <= 30 else { return true }
        let bitCount = UInt64((filter.count - 1) * 8)
        var h = hash
        let delta = (h >> 33) | (h << 31)
        for _ in 0..<probes {
            let bit = Int((h >> 32) &* bitCount >> 32)
            if filter[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
            h &+= delta
        }
        return true
    }
}
