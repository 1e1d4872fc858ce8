import Crypto

/// The 32-byte SHA-256 hash that links each batch of a partition to the one before it
/// (docs/FORMAT.md, "Hash chain").
///
/// `chain[n] = SHA-256(chain[n−1] ‖ batch bytes [12, 56) ‖ batch bytes [88, batchLength))`:
/// the previous batch's chain hash, then exactly what the CRC covers except the chain
/// field itself (version, codec, flags, offsets, counts, lengths, timestamps, reserved
/// bytes and the stored, compressed payload). Changing, removing, inserting or reordering
/// any batch therefore changes every later chain hash, and the newest one — the partition's
/// *head* — vouches for the whole partition when it is kept somewhere an attacker cannot
/// reach. The first batch of a partition links to `genesis(logID:partition:)`, so that a
/// partition cannot be moved to another partition or another log unnoticed.
public struct ChainHash: Sendable, Hashable, CustomStringConvertible {
    /// Bytes in a chain hash.
    public static let size = 32
    /// The hash's bytes in the order they are stored, as four little-endian words.
    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// All zero bytes: what a batch of format version 1 carries (no chain).
    public static let zero = ChainHash(words: (0, 0, 0, 0))

    private init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// Reads a hash stored at `base` (32 bytes).
    init(loadingFrom base: UnsafeRawPointer) {
        words = (ByteCoding.load(UInt64.self, from: base, at: 0), ByteCoding.load(UInt64.self, from: base, at: 8),
                 ByteCoding.load(UInt64.self, from: base, at: 16), ByteCoding.load(UInt64.self, from: base, at: 24))
    }

    /// Parses 64 hexadecimal digits (either case); nil for anything else.
    public init?(hex: some StringProtocol) {
        guard let bytes = ByteCoding.bytes(hex: hex), bytes.count == Self.size else { return nil }
        guard let hash = bytes.withUnsafeBytes({ raw in raw.baseAddress.map { ChainHash(loadingFrom: $0) } }) else { return nil }
        self = hash
    }

    /// Writes the hash at `base` (32 bytes).
    func store(to base: UnsafeMutableRawPointer) {
        ByteCoding.store(words.0, to: base, at: 0)
        ByteCoding.store(words.1, to: base, at: 8)
        ByteCoding.store(words.2, to: base, at: 16)
        ByteCoding.store(words.3, to: base, at: 24)
    }

    /// The hash's 32 bytes.
    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in if let base = raw.baseAddress { store(to: base) } }
        return bytes
    }

    /// 64 lowercase hexadecimal digits, byte by byte in stored order.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(2 * Self.size)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public static func == (a: ChainHash, b: ChainHash) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// What the first batch of a partition links to: SHA-256 of the ASCII text
    /// `backorder-chain <log-id> <partition>` (log-id as in the manifest, "-" when the
    /// manifest has none; the partition in decimal).
    public static func genesis(logID: String?, partition: Int) -> ChainHash {
        digest(Array("backorder-chain \(logID ?? "-") \(partition)".utf8))
    }

    /// The chain hash of the batch at `base` (`length` bytes) that follows `previous`.
    static func link(previous: ChainHash, batch base: UnsafeRawPointer, length: Int) -> ChainHash {
        var hasher = SHA256()
        withUnsafeBytes(of: previous.words) { hasher.update(bufferPointer: $0) }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: base + BatchHeader.checksummedFrom,
                                                            count: BatchHeader.chainAt - BatchHeader.checksummedFrom))
        let after = BatchHeader.chainAt + size
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: base + after, count: length - after))
        return finish(hasher)
    }

    static func digest(_ bytes: [UInt8]) -> ChainHash {
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return finish(hasher)
    }

    private static func finish(_ hasher: SHA256) -> ChainHash {
        hasher.finalize().withUnsafeBytes { raw in
            // A SHA-256 digest is always 32 bytes.
            raw.baseAddress.map { ChainHash(loadingFrom: $0) } ?? .zero
        }
    }
}
