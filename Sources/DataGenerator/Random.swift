// Deterministic pseudo-random numbers: SplitMix64 for seeding, xoshiro256** for the stream.
//
// Only integer arithmetic and IEEE-754 basic operations (+, *, /) are used, so the output is the
// same on every platform. No Foundation, no system randomness.

/// SplitMix64 (Steele, Lea, Flood 2014): used to expand a 64-bit seed into generator state,
/// and as the project's one small seeded generator (tests, sample events): the same seed
/// gives the same sequence everywhere.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    init(_ seed: UInt64) { state = seed }

    /// A generator starting from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A one-shot 64-bit mix of `value` (the SplitMix64 finaliser).
    static func mix(_ value: UInt64) -> UInt64 {
        var s = SplitMix64(value)
        return s.next()
    }
}

/// xoshiro256** (Blackman, Vigna 2018).
struct Xoshiro256: Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    init(seed: UInt64) {
        var sm = SplitMix64(seed)
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = Xoshiro256.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Xoshiro256.rotl(s3, 45)
        return result
    }

    /// Uniform integer in `0..<n` (n ≥ 1), by multiply-high (bias < n / 2^64, negligible).
    @inline(__always)
    mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: UInt64(n).multipliedFullWidth(by: next()).high)
    }

    /// Uniform integer in `lo...hi` (lo ≤ hi).
    @inline(__always)
    mutating func between(_ lo: Int, _ hi: Int) -> Int {
        lo + below(hi - lo + 1)
    }

    /// True with probability `perMillion` / 1,000,000.
    @inline(__always)
    mutating func chance(_ perMillion: Int) -> Bool {
        below(1_000_000) < perMillion
    }

    /// Uniform double in [0, 1).
    @inline(__always)
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}
