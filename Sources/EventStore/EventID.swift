/// A 128-bit event id, written as a UUID (`5f0c9a0e-8a7e-4c2b-9a51-1c6f7f1d2a10`).
///
/// The idempotency key of an event: an append whose id is already stored is acknowledged
/// as a duplicate with the original position, and nothing is written.
public struct EventID: Hashable, Sendable, CustomStringConvertible {
    /// The first 8 bytes, big-endian (the order of the text form).
    public let high: UInt64
    /// The last 8 bytes, big-endian.
    public let low: UInt64

    /// An id from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the 36-character text form (hex digits in either case); nil if malformed.
    public init?(text: UnsafeRawBufferPointer) {
        guard text.count == 36, let base = text.baseAddress,
              base.load(fromByteOffset: 8, as: UInt8.self) == UInt8(ascii: "-"), base.load(fromByteOffset: 13, as: UInt8.self) == UInt8(ascii: "-"),
              base.load(fromByteOffset: 18, as: UInt8.self) == UInt8(ascii: "-"), base.load(fromByteOffset: 23, as: UInt8.self) == UInt8(ascii: "-")
        else { return nil }
        // Each digit's value comes from a table (0xFF: not a digit), OR-ed into one check at
        // the end instead of a branch per byte: 0.4 % of a `--dry-run`'s samples where a
        // `switch` per byte took 2.75 % (bench/RESULTS.md).
        var high: UInt64 = 0, low: UInt64 = 0, invalid: UInt8 = 0
        Self.hexValues.withUnsafeBufferPointer { table in
            func digits(_ range: Range<Int>, into word: inout UInt64) {
                for offset in range {
                    let value = table[Int(base.load(fromByteOffset: offset, as: UInt8.self))]
                    invalid |= value
                    word = word << 4 | UInt64(value & 0x0F)
                }
            }
            digits(0..<8, into: &high)
            digits(9..<13, into: &high)
            digits(14..<18, into: &high)
            digits(19..<23, into: &low)
            digits(24..<36, into: &low)
        }
        guard invalid & 0xF0 == 0 else { return nil }
        self.init(high: high, low: low)
    }

    /// Each byte's value as a hex digit, or 0xFF.
    private static let hexValues: [UInt8] = (0..<256).map { byte -> UInt8 in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt8(byte) - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt8(byte) - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt8(byte) - UInt8(ascii: "A") + 10
        default: 0xFF
        }
    }

    /// Parses the text form of a string.
    public init?(_ text: String) {
        guard let id = Array(text.utf8).withUnsafeBytes({ EventID(text: $0) }) else { return nil }
        self = id
    }

    /// A random version-4 id.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> EventID {
        let high = (generator.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let low = (generator.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return EventID(high: high, low: low)
    }

    /// A random version-4 id from the system's generator.
    public static func random() -> EventID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public var description: String {
        var out = [UInt8]()
        appendText(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the 36-character text form (lowercase hex) to `out`, in one append.
    public func appendText(to out: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        hex.withUTF8Buffer { digits in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { text in
                var at = 0
                for i in 0..<32 {
                    if i == 8 || i == 12 || i == 16 || i == 20 {
                        text[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    let word = i < 16 ? high : low
                    let shift = UInt64(60 - (i % 16) * 4)
                    text[at] = digits[Int((word >> shift) & 0xF)]
                    at += 1
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: text[0..<36]))
            }
        }
    }
}
