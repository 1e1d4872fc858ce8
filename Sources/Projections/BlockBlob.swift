import EventLog

/// Variable-length items packed into lz4-compressed blocks of about 16 KiB (a block is
/// sealed once it reaches 16 KiB, so an item larger than that makes a larger block), each with its
/// own CRC32C, in two sections of a table file: the blocks, and an index of three
/// `UInt64`s per block (offset in the blocks section, compressed length << 32 | raw
/// length, CRC32C of the compressed bytes). An item is found by its locator
/// (block << 32 | offset in the block). Reading one item decompresses and checks one
/// block, so a point query touches a few pages, not the whole blob.
public struct BlockBlobWriter: Sendable {
    /// Blocks are sealed once they reach this size: small enough that a point lookup
    /// decompresses little (a customer's 50 newest requests touch ~50 blocks: 16 KiB blocks
    /// made that 0.36 ms instead of 0.95 ms), large enough to compress well (+3 % size).
    public static let blockBytes = 16 << 10
    private var blocks: [UInt8] = []
    private var index: [UInt64] = []
    private var current: [UInt8] = []

    /// An empty blob.
    public init() {}

    /// Appends an item and returns its locator.
    public mutating func append(_ item: [UInt8]) throws -> UInt64 {
        if current.count >= Self.blockBytes { try seal() }
        let locator = UInt64(index.count / 3) << 32 | UInt64(current.count)
        current.append(contentsOf: item)
        return locator
    }

    private mutating func seal() throws {
        guard !current.isEmpty else { return }
        var compressed = [UInt8](repeating: 0, count: Codec.lz4.compressBound(current.count))
        let n = try current.withUnsafeBytes { src in try compressed.withUnsafeMutableBytes { try Codec.lz4.compress(src, into: $0) } }
        compressed.removeLast(compressed.count - n)
        index += [UInt64(blocks.count), UInt64(n) << 32 | UInt64(current.count), UInt64(CRC32C.checksum(compressed))]
        blocks += compressed
        current.removeAll(keepingCapacity: true)
    }

    /// Seals the last block and adds both sections to `file`.
    public mutating func finish(into file: inout TableFileWriter, blocksKind: UInt32, indexKind: UInt32) throws {
        try seal()
        file.add(kind: blocksKind, blocks)
        file.add(kind: indexKind, integers: index)
    }
}

/// Reads items of a block blob from a mapped table file, keeping the last few blocks.
public final class BlockBlobReader {
    private let file: MappedTableFile
    private let blocks: UnsafeRawBufferPointer
    private let index: IntegerColumn<UInt64>
    private var cache: [(block: Int, bytes: [UInt8])] = []

    /// The blob stored in sections `blocksKind` and `indexKind` of `file`.
    public init(_ file: MappedTableFile, blocksKind: UInt32, indexKind: UInt32) throws {
        self.file = file
        // Blocks carry their own CRCs, checked one by one as they are read.
        blocks = try file.section(blocksKind, verified: false)
        index = try file.integers(indexKind, as: UInt64.self)
        guard index.count % 3 == 0 else { throw ProjectionError.badSnapshot(path: file.path, reason: "section \(indexKind): not a block index") }
    }

    /// The decompressed block holding the item at `locator`, and the item's offset in it.
    public func item(_ locator: UInt64) throws -> (block: [UInt8], offset: Int) {
        let block = Int(locator >> 32), offset = Int(locator & 0xFFFF_FFFF)
        if let hit = cache.firstIndex(where: { $0.block == block }) {
            // Most recently used first: the upper levels of a binary search stay cached.
            let entry = cache.remove(at: hit)
            cache.insert(entry, at: 0)
            return try checked(entry.bytes, offset, block)
        }
        guard block < index.count / 3 else { throw bad("locator names block \(block) of \(index.count / 3)") }
        let lengths = index[block * 3 + 1], crc = UInt32(truncatingIfNeeded: index[block * 3 + 2])
        let compressed = Int(lengths >> 32), raw = Int(lengths & 0xFFFF_FFFF)
        // A block holds whole items, so one large item makes a large block; lz4 cannot
        // expand more than 255-fold, which bounds what a damaged index can make us allocate.
        guard let start = Int(exactly: index[block * 3]), start <= blocks.count, compressed <= blocks.count - start,
              raw <= compressed &* 255 &+ 64 else {
            throw bad("block \(block) lies outside its section")
        }
        let source = UnsafeRawBufferPointer(rebasing: blocks[start..<(start + compressed)])
        guard CRC32C.checksum(source) == crc else { throw bad("block \(block) at byte \(start) of its section: CRC32C mismatch") }
        var bytes = [UInt8](repeating: 0, count: raw)
        guard bytes.withUnsafeMutableBytes({ Codec.lz4.decompress(source, into: $0) }) else { throw bad("block \(block) does not decompress") }
        cache.insert((block, bytes), at: 0)
        if cache.count > 16 { cache.removeLast() }
        return try checked(bytes, offset, block)
    }

    private func checked(_ bytes: [UInt8], _ offset: Int, _ block: Int) throws -> ([UInt8], Int) {
        guard offset < bytes.count else { throw bad("locator points past the end of block \(block)") }
        return (bytes, offset)
    }

    private func bad(_ reason: String) -> ProjectionError { .badSnapshot(path: file.path, reason: reason) }
}
