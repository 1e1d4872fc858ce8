/// Which keys the ingestor wrote to its scratch store: a Bloom filter of fixed size, so
/// that a lookup of a key never written there — a new event id, a new stream, nearly every
/// line of a large input — is answered from memory instead of probing the scratch store's
/// memtables and every table's filter (10 % of a 10,000,000-line validation's CPU before).
///
/// Its size is set, not grown: a larger input only raises the false-positive rate (a
/// false positive costs the lookup it would have cost anyway); a key written is never
/// reported absent. Cache-local: a key's probes are all in one 64-byte line, so a lookup
/// touches one line of memory.
struct ScratchKeyFilter {
    private var words: [UInt64]
    private let lines: UInt64
    static let probes = 6
    /// Keys inserted (for the false-positive rate a report may state).
    private(set) var count = 0

    /// A filter of `bytes` (rounded down to whole 64-byte lines, at least one).
    init(bytes: Int) {
        precondition(bytes >= 0, "a filter of \(bytes) bytes")
        let lines = max(1, bytes / 64)
        self.lines = UInt64(lines)
        words = Array(repeating: 0, count: lines * 8)
    }

    /// Notes `key` (its bytes as written to the scratch store).
    mutating func insert(_ key: UnsafeRawBufferPointer) {
        var (word, g) = locate(key)
        for _ in 0..<Self.probes {
            words[word + Int((g >> 6) & 7)] |= 1 << (g & 63)
            g >>= 9
        }
        count += 1
    }

    /// False when `key` was certainly never inserted.
    func mayContain(_ key: UnsafeRawBufferPointer) -> Bool {
        var (word, g) = locate(key)
        for _ in 0..<Self.probes {
            if words[word + Int((g >> 6) & 7)] & (1 << (g & 63)) == 0 { return false }
            g >>= 9
        }
        return true
    }

    /// The first word of the key's line, and 54 bits of hash for its probes (9 bits each:
    /// a word of the line, then a bit of the word).
    private func locate(_ key: UnsafeRawBufferPointer) -> (Int, UInt64) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a, then a finalizer: keys are short
        for byte in key { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        h = Self.mix(h)
        return (Int(((h >> 32) &* lines) >> 32) * 8, Self.mix(h ^ 0x9E37_79B9_7F4A_7C15))
    }

    /// SplitMix64's finalizer.
    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
