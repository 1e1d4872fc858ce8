import EventLog
/// A fast 64-bit hash of short byte strings, for the memtable's hash index and the bloom
/// filters. Not cryptographic, not seeded per process: it must give the same bits in every
/// process, because bloom filters are stored.
enum KeyHash {
    /// The hash of `count` bytes at `base`.
    @inline(__always)
    static func of(_ base: UnsafeRawPointer, _ count: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(truncatingIfNeeded: count) &* 0xD6E8_FEB8_6659_FD93)
        var i = 0
        while i + 8 <= count {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        return finalize(h)
    }

    /// The hash of a buffer.
    @inline(__always)
    static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress else { return of(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return of(base, bytes.count)
    }

    /// SplitMix64's finalizer (stored in bloom filters: see `SplitMix`).
    @inline(__always)
    static func finalize(_ x: UInt64) -> UInt64 { SplitMix.finalize(x) }
}

/// Byte-wise comparison of keys (memcmp order, shorter first on a common prefix).
enum KeyOrder {
    @inline(__always)
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            // Eight bytes at a time, read big-endian so that integer order is byte order:
            // keys are short (tens of bytes), and a call to memcmp cost more than the
            // comparison (a merge compares keys at every step).
            var i = 0
            while i + 8 <= n {
                let x = UInt64(bigEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let y = UInt64(bigEndian: pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if x != y { return x < y ? -1 : 1 }
                i += 8
            }
            while i < n {
                let x = pa.load(fromByteOffset: i, as: UInt8.self), y = pb.load(fromByteOffset: i, as: UInt8.self)
                if x != y { return Int(x) - Int(y) }
                i += 1
            }
        }
        return a.count - b.count
    }

    /// The length of the prefix `a` and `b` share, compared 8 bytes at a time (a table's
    /// writer asks it of every key it adds: its shared prefix with the key before it is
    /// both what the block stores and the check that keys come in order).
    @inline(__always)
    static func sharedPrefix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        guard n > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return 0 }
        var i = 0
        while i + 8 <= n {
            let x = UInt64(littleEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            if x != 0 { return i + x.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < n && pa.load(fromByteOffset: i, as: UInt8.self) == pb.load(fromByteOffset: i, as: UInt8.self) { i += 1 }
        return i
    }

    /// Whether `key` sorts after `previous`, given the length of the prefix they share.
    @inline(__always)
    static func follows(_ key: UnsafeRawBufferPointer, _ previous: UnsafeRawBufferPointer, sharing shared: Int) -> Bool {
        shared < key.count && (shared == previous.count || key[shared] > previous[shared])
    }
}

