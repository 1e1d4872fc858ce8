/// The fixed 96-byte header in front of every record batch (docs/FORMAT.md, "Batch").
///
/// The CRC32C at byte 8 covers every byte after it up to the end of the batch, so a torn
/// or flipped byte anywhere in the header or the payload is caught. A header that is all
/// zero bytes marks the pre-zeroed free space at the end of an active segment.
public struct BatchHeader: Sendable, Equatable {
    /// "BKLG" read as a little-endian UInt32.
    static let magic: UInt32 = 0x474C_4B42
    /// The batch format this build writes: 2, with a hash chain (docs/FORMAT.md, "Hash chain").
    public static let formatVersion: UInt8 = 2
    /// The batch formats this build reads: 1 (no chain; logs of manifest version 1) and 2.
    public static let readableVersions: ClosedRange<UInt8> = 1...2
    /// Bytes in the header; the compressed records follow.
    public static let size = 96

    // Byte offsets of the fields.
    static let magicAt = 0, lengthAt = 4, crcAt = 8, versionAt = 12, codecAt = 13, flagsAt = 14
    static let baseOffsetAt = 16, countAt = 24, uncompressedAt = 28, compressedAt = 32
    static let firstTimestampAt = 40, maxTimestampAt = 48, chainAt = 56
    /// The CRC covers bytes from here to the end of the batch.
    static let checksummedFrom = 12

    /// Total bytes of the batch: header plus compressed records.
    public var batchLength: Int
    /// CRC32C of bytes `[12, batchLength)`.
    public var crc: UInt32
    /// How the records are compressed.
    public var codec: Codec
    /// Offset of the first record; the others follow densely.
    public var baseOffset: Int64
    /// Number of records (≥ 1).
    public var recordCount: Int
    /// Bytes of the records before compression.
    public var uncompressedLength: Int
    /// Bytes of the records as stored (`batchLength - size`).
    public var compressedLength: Int
    /// Timestamp of the first record, in microseconds since the Unix epoch.
    public var firstTimestamp: Int64
    /// Largest record timestamp in the batch (the last one when records are appended in time order).
    public var maxTimestamp: Int64
    /// The batch format version (byte 12).
    public var version: UInt8 = BatchHeader.formatVersion
    /// The stored chain hash (bytes 56…87): zero in version 1, the partition's hash chain
    /// up to and including this batch in version 2 (`ChainHash`).
    public var chain: ChainHash = .zero

    /// The offset after the last record of the batch.
    public var nextOffset: Int64 { baseOffset + Int64(recordCount) }

    /// Writes the header into `base` (which must hold `size` bytes). The CRC field is
    /// written as stored in `crc`; `sealChecksum` computes it once the payload is in place.
    func write(to base: UnsafeMutableRawPointer) {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
        ByteCoding.store(Self.magic, to: base, at: Self.magicAt)
        ByteCoding.store(UInt32(batchLength), to: base, at: Self.lengthAt)
        ByteCoding.store(crc, to: base, at: Self.crcAt)
        ByteCoding.store(version, to: base, at: Self.versionAt)
        ByteCoding.store(codec.rawValue, to: base, at: Self.codecAt)
        ByteCoding.store(UInt16(0), to: base, at: Self.flagsAt)
        ByteCoding.store(baseOffset, to: base, at: Self.baseOffsetAt)
        ByteCoding.store(UInt32(recordCount), to: base, at: Self.countAt)
        ByteCoding.store(UInt32(uncompressedLength), to: base, at: Self.uncompressedAt)
        ByteCoding.store(UInt32(compressedLength), to: base, at: Self.compressedAt)
        ByteCoding.store(firstTimestamp, to: base, at: Self.firstTimestampAt)
        ByteCoding.store(maxTimestamp, to: base, at: Self.maxTimestampAt)
        chain.store(to: base + Self.chainAt)
    }

    /// Sets a new base offset in an encoded batch, links it to `previous` (the chain hash
    /// of the partition's batch before it), and recomputes its CRC, all in place. Returns
    /// the batch's chain hash, which the next batch links to.
    static func stamp(baseOffset: Int64, previous: ChainHash, batch base: UnsafeMutableRawPointer, length: Int) -> ChainHash {
        ByteCoding.store(baseOffset, to: base, at: baseOffsetAt)
        let chain = ChainHash.link(previous: previous, batch: base, length: length)
        chain.store(to: base + chainAt)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base + checksummedFrom, count: length - checksummedFrom))
        ByteCoding.store(crc, to: base, at: crcAt)
        return chain
    }

    /// What the bytes at a batch position turned out to be.
    enum Parse: Equatable {
        /// A well-formed header; the CRC is not checked yet (`verifyChecksum`).
        case header(BatchHeader)
        /// All-zero bytes: the pre-zeroed free space after the last batch.
        case zero
        /// Neither: the reason says which field is wrong.
        case invalid(String)
    }

    /// Parses and sanity-checks a header from `available` readable bytes at `base`.
    ///
    /// Checks magic, version, codec, lengths and count against the format's limits, so that
    /// a corrupt length can never make a reader allocate or read beyond a sane bound.
    static func parse(_ base: UnsafeRawPointer, available: Int) -> Parse {
        let visible = min(available, size)
        if UnsafeRawBufferPointer(start: base, count: visible).allSatisfy({ $0 == 0 }) { return .zero }
        guard available >= size else { return .invalid("truncated batch header (\(available) of \(size) bytes)") }
        let magic = ByteCoding.load(UInt32.self, from: base, at: magicAt)
        guard magic == Self.magic else { return .invalid("bad magic 0x\(String(magic, radix: 16))") }
        let version = ByteCoding.load(UInt8.self, from: base, at: versionAt)
        guard readableVersions.contains(version) else { return .invalid("unsupported batch format version \(version)") }
        guard let codec = Codec(rawValue: ByteCoding.load(UInt8.self, from: base, at: codecAt)) else {
            return .invalid("unknown codec \(ByteCoding.load(UInt8.self, from: base, at: codecAt))")
        }
        let length = Int(ByteCoding.load(UInt32.self, from: base, at: lengthAt))
        let count = Int(ByteCoding.load(UInt32.self, from: base, at: countAt))
        let uncompressed = Int(ByteCoding.load(UInt32.self, from: base, at: uncompressedAt))
        let compressed = Int(ByteCoding.load(UInt32.self, from: base, at: compressedAt))
        guard length >= size, length <= Limits.maxBatchBytes else { return .invalid("batch length \(length) out of range") }
        guard compressed == length - size else { return .invalid("compressed length \(compressed) disagrees with batch length \(length)") }
        guard count >= 1, count <= Limits.maxRecordsPerBatch else { return .invalid("record count \(count) out of range") }
        guard uncompressed <= Limits.maxUncompressedBatchBytes else { return .invalid("uncompressed length \(uncompressed) out of range") }
        let baseOffset = ByteCoding.load(Int64.self, from: base, at: baseOffsetAt)
        guard baseOffset >= 0 else { return .invalid("negative base offset \(baseOffset)") }
        return .header(BatchHeader(
            batchLength: length,
            crc: ByteCoding.load(UInt32.self, from: base, at: crcAt),
            codec: codec,
            baseOffset: baseOffset,
            recordCount: count,
            uncompressedLength: uncompressed,
            compressedLength: compressed,
            firstTimestamp: ByteCoding.load(Int64.self, from: base, at: firstTimestampAt),
            maxTimestamp: ByteCoding.load(Int64.self, from: base, at: maxTimestampAt),
            version: version,
            chain: ChainHash(loadingFrom: base + chainAt)))
    }

    /// Whether the stored chain hash is the link from `previous` over this batch's bytes
    /// (`base` holds the whole batch).
    func linksTo(_ previous: ChainHash, batch base: UnsafeRawPointer) -> Bool {
        ChainHash.link(previous: previous, batch: base, length: batchLength) == chain
    }

    /// Whether the stored CRC matches the batch's bytes (`base` holds the whole batch).
    func verifyChecksum(_ base: UnsafeRawPointer) -> Bool {
        CRC32C.checksum(UnsafeRawBufferPointer(start: base + Self.checksummedFrom, count: batchLength - Self.checksummedFrom)) == crc
    }
}
