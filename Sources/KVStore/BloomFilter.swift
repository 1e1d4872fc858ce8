/// A bloom filter over the keys of one table file (docs/KVSTORE.md, "Filter block"): a
/// point lookup skips a file whose filter says the key is not there.
///
/// Cache-local: a key's probes all fall in one 64-byte line chosen by the high half of its
/// 64-bit `KeyHash`, so a lookup that misses costs one cache miss per file instead of one
/// per probe (a store of random keys — ids, hashes — checks several files per lookup).
/// Layout: lines of 512 bits, then one byte `0x80 | probes`. A filter whose last byte has
/// the high bit clear is of the earlier layout, read as "may contain": an operator
/// precedence slip (`a &* b >> 32` shifts `b`) put every probe of that layout on bit 0, so
/// those filters excluded nothing; any other encoding is read as "may contain" too.
enum BloomFilter {
    static let lineBytes = 64
    static let blockedFlag: UInt8 = 0x80

    /// The filter of keys with these hashes.
    static func build(hashes: [UInt64], bitsPerKey: Int) -> [UInt8] {
        // Fewer probes than the ideal 0.69·bitsPerKey: within one line, more probes
        // collide more, and each probe costs instructions while the line is cached anyway.
        let probes = max(1, min(12, Int(Double(bitsPerKey) * 0.6)))
        let lines = max(1, (hashes.count * bitsPerKey + 511) / 512)
        var filter = [UInt8](repeating: 0, count: lines * lineBytes + 1)
        filter.withUnsafeMutableBytes { out in
            for hash in hashes { set(hash, probes: probes, in: out, lines: lines) }
        }
        filter[lines * lineBytes] = blockedFlag | UInt8(probes)
        return filter
    }

    /// Where the line of the key with `hash` starts, of `lines` lines: chosen by the hash's
    /// high half (its low half picks the probes).
    @inline(__always)
    private static func lineOffset(_ hash: UInt64, lines: Int) -> Int {
        Int(((hash >> 32) &* UInt64(lines)) >> 32) * lineBytes
    }

    /// Sets the bits of the key with `hash` in the first `lines` lines of `bits`.
    @inline(__always)
    static func set(_ hash: UInt64, probes: Int, in bits: UnsafeMutableRawBufferPointer, lines: Int) {
        let line = lineOffset(hash, lines: lines)
        var h = UInt32(truncatingIfNeeded: hash)
        for _ in 0..<probes {
            let bit = Int(h >> 23) // 9 bits: 0..<512
            bits[line + bit >> 3] |= 1 << UInt8(bit & 7)
            h = h &* 0x9E37_79B9
        }
    }

    /// Whether every bit of the key with `hash` is set in the first `lines` lines of `bits`.
    @inline(__always)
    static func test(_ hash: UInt64, probes: Int, in bits: UnsafeRawBufferPointer, lines: Int) -> Bool {
        let line = lineOffset(hash, lines: lines)
        var h = UInt32(truncatingIfNeeded: hash)
        for _ in 0..<probes {
            let bit = Int(h >> 23)
            if bits[line + bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
            h = h &* 0x9E37_79B9
        }
        return true
    }

    /// A stored filter's probes and lines; nil when it is not of this layout (read as "may
    /// contain").
    @inline(__always)
    private static func layout(_ filter: UnsafeRawBufferPointer) -> (probes: Int, lines: Int)? {
        guard filter.count >= 2 else { return nil }
        let last = filter[filter.count - 1]
        guard last & blockedFlag != 0 else { return nil }
        let probes = Int(last & ~blockedFlag)
        let lines = (filter.count - 1) / lineBytes
        guard probes >= 1 && probes <= 30, lines >= 1, (filter.count - 1) % lineBytes == 0 else { return nil }
        return (probes, lines)
    }

    /// Whether the key with this hash may be in the set (false: certainly not).
    static func mayContain(_ filter: UnsafeRawBufferPointer, hash: UInt64) -> Bool {
        guard let (probes, lines) = layout(filter) else { return true }
        return test(hash, probes: probes, in: filter, lines: lines)
    }

    /// Where the line `mayContain` reads for `hash` starts in a stored filter; nil for a
    /// filter of another layout.
    static func lineStart(in filter: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        layout(filter).map { lineOffset(hash, lines: $0.lines) }
    }
}

/// A filter of keys of a size set up front, filled as keys come — the table filter's
/// layout and probes (`BloomFilter`), over `KeyHash`, without its trailing byte: for a
/// caller that must know which keys it wrote somewhere (the ingestor's scratch store)
/// without looking there. A set that outgrows the size only raises the false-positive
/// rate; a key inserted is never reported absent.
public struct KeyFilter: Sendable {
    private var bits: [UInt8]
    private let lines: Int
    private let probes: Int

    /// A filter of `bytes` (whole 64-byte lines, at least one) with `probes` bits per key
    /// (`BloomFilter` takes 0.6 × the bits per key: 6 for 10).
    public init(bytes: Int, probes: Int = 6) {
        precondition(bytes >= 0 && (1...12).contains(probes), "a key filter of \(bytes) bytes and \(probes) probes")
        lines = max(1, bytes / BloomFilter.lineBytes)
        self.probes = probes
        bits = [UInt8](repeating: 0, count: lines * BloomFilter.lineBytes)
    }

    /// Notes `key`.
    public mutating func insert(_ key: UnsafeRawBufferPointer) {
        let (hash, probes, lines) = (KeyHash.of(key), probes, lines)
        bits.withUnsafeMutableBytes { BloomFilter.set(hash, probes: probes, in: $0, lines: lines) }
    }

    /// False when `key` was certainly never inserted.
    public func mayContain(_ key: UnsafeRawBufferPointer) -> Bool {
        let hash = KeyHash.of(key)
        return bits.withUnsafeBytes { BloomFilter.test(hash, probes: probes, in: $0, lines: lines) }
    }
}
