import EventLog

/// How a key-value store is shaped and bounded. Every buffer the store keeps is bounded by
/// one of these, so its memory is set by configuration, never by the data's size.
public struct KVOptions: Sendable {
    /// Bytes of writes kept in memory before the owner is told to freeze them
    /// (`KVStore.needsFreeze`).
    public var memtableBytes = 32 << 20
    /// Frozen memtables waiting for the background flush before `freeze` waits.
    public var maxFrozenMemtables = 2
    /// Uncompressed bytes of a data block before it is cut.
    public var blockBytes = 4 << 10
    /// Entries between restart points in a block (binary search granularity).
    public var restartInterval = 16
    /// Bytes of a table file written by a compaction before it is cut.
    public var targetFileBytes = 16 << 20
    /// How files are merged (docs/KVSTORE.md, "Compaction").
    public var compactionStyle = CompactionStyle.leveled
    /// Level-0 runs that trigger a compaction (tiered: the fewest runs merged at once).
    public var level0CompactionTrigger = 4
    /// Level-0 runs at which `freeze` waits for compaction to catch up.
    public var level0StopTrigger = 12
    /// Target bytes of level 1; each deeper level is `levelMultiplier` times larger.
    public var level1Bytes: Int64 = 128 << 20
    /// Growth factor between levels.
    public var levelMultiplier: Int64 = 10
    /// Levels (level 0 plus this many minus one sorted levels).
    public var levels = 7
    /// Bytes of decompressed blocks (data, index, filter) kept in memory.
    public var blockCacheBytes = 32 << 20
    /// Bloom filter bits per key (0: no filters; 10 gives about 1 % false positives).
    public var bloomBitsPerKey = 10
    /// Table files open at once, each with its index block and filter in memory; the least
    /// recently read is closed when another must open (LevelDB's table cache). Bounds the
    /// store's file descriptors and that memory by configuration, not by the data's size.
    public var maxOpenTables = 256
    /// How blocks are compressed (a block is stored raw when compression saves little).
    public var codec: Codec = .lz4
    /// Whether files and the manifest are fdatasynced before they are used (false only in
    /// throwaway stores: a power loss may then leave a damaged store).
    public var sync = true
    /// The length of a key's *partition prefix*, or nil: a flush or compaction starts a new
    /// file where the prefix changes (once the file holds `targetFileBytes / 16`), so that
    /// keys of different partitions (an index kind, a tenant, a month) do not share files
    /// and a compaction that reaches one partition does not rewrite its neighbours.
    public var partitionPrefixLength: (@Sendable (UnsafeRawBufferPointer) -> Int)?
    /// Largest key, in bytes.
    public static let maxKeyBytes = 16 << 10
    /// Largest value, in bytes.
    public static let maxValueBytes = 8 << 20

    /// The defaults.
    public init() {}

    /// How a store merges its files.
    public enum CompactionStyle: Sendable, Equatable {
        /// LevelDB's: level 0's runs are merged into sorted levels 1, 2, …, each
        /// `levelMultiplier` times larger than the one before. A read touches one file per
        /// level; keys that arrive in order are moved down without rewriting. For stores
        /// that are scanned by range.
        case leveled
        /// Size-tiered: every flush stays a sorted run of level 0, and the newest runs are
        /// merged into one when at least `level0CompactionTrigger` of them, each no larger
        /// than the newer ones together, can be (so runs double in size, like a binary
        /// counter). Random keys are rewritten about log2(data / memtable) times instead of
        /// about `levelMultiplier` times per level; a lookup checks one filter per run. For
        /// stores read by key only, whose keys are hashes and whose lookups rarely reach
        /// the files (an ingest's scratch store, behind its filter in memory).
        case tiered
    }

    /// Checks every bound; the message names the option.
    func validate() throws {
        func require(_ ok: Bool, _ what: String) throws { if !ok { throw KVError.invalidArgument("KVOptions: \(what)") } }
        try require(memtableBytes >= 64 << 10 && memtableBytes <= 1 << 30, "memtableBytes must be 64 KiB…1 GiB, not \(memtableBytes)")
        try require((1...16).contains(maxFrozenMemtables), "maxFrozenMemtables must be 1…16")
        try require(blockBytes >= 256 && blockBytes <= 1 << 20, "blockBytes must be 256 B…1 MiB")
        try require((1...1024).contains(restartInterval), "restartInterval must be 1…1024")
        try require(targetFileBytes >= 64 << 10 && targetFileBytes <= 1 << 30, "targetFileBytes must be 64 KiB…1 GiB")
        try require(level0CompactionTrigger >= 2 && level0StopTrigger > level0CompactionTrigger, "level-0 triggers must satisfy 2 ≤ compaction < stop")
        try require(level1Bytes >= 1 << 20 && levelMultiplier >= 2, "level1Bytes ≥ 1 MiB and levelMultiplier ≥ 2")
        try require((2...12).contains(levels), "levels must be 2…12")
        try require(maxOpenTables >= 1, "maxOpenTables must be at least 1, not \(maxOpenTables)")
        try require(blockCacheBytes >= 0, "blockCacheBytes must be ≥ 0")
        try require((0...64).contains(bloomBitsPerKey), "bloomBitsPerKey must be 0…64")
    }

    /// The target size of sorted level `level` (≥ 1).
    func targetBytes(level: Int) -> Int64 {
        var bytes = level1Bytes
        if level > 1 { for _ in 2...level { bytes = bytes.multipliedReportingOverflow(by: levelMultiplier).partialValue } }
        return bytes
    }
}
