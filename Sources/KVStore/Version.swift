import EventLog
import Synchronization

/// One table file of a version, opened the first time it is read. When a compaction drops
/// the file from the store's current version it is marked obsolete, and it is removed from
/// the disk once no version (no reader) refers to it any more.
final class TableHandle: Sendable {
    let info: TableInfo
    let path: String
    private let storage: any Storage
    private let cache: BlockCache
    private let owner: OwnerState
    private let opened = Mutex<TableReader?>(nil)
    private let obsolete = Atomic<Bool>(false)
    /// When it was last read (`OpenTables`' clock), to close the least recently read first.
    private let lastRead = Atomic<UInt64>(0)

    init(info: TableInfo, directory: String, storage: any Storage, cache: BlockCache, owner: OwnerState) {
        self.info = info
        self.path = directory + "/" + TableHandle.fileName(info.number)
        self.storage = storage
        self.cache = cache
        self.owner = owner
    }

    deinit {
        // A store whose worker failed removes nothing: the next open sorts out the files.
        guard obsolete.load(ordering: .acquiring), !owner.failed.load(ordering: .acquiring) else { return }
        cache.evict(table: info.number)
        try? storage.remove(path)
    }

    /// `000042.sst`.
    static func fileName(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".sst"
    }

    /// The file's number from its name, or nil for other names.
    static func number(fromFileName name: String) -> UInt64? {
        guard name.hasSuffix(".sst") else { return nil }
        return UInt64(name.dropLast(4))
    }

    /// The open file, opened if it is not (which may close the least recently read table
    /// of the store: a reader already handed out stays usable until its user lets go).
    func reader() throws -> TableReader {
        lastRead.store(owner.openTables.tick(), ordering: .relaxed)
        var madeNow = false
        let reader = try opened.withLock { current in
            if let current { return current }
            let reader = try TableReader(storage: storage, path: path, number: info.number, cache: cache)
            guard reader.size == info.size else {
                throw KVError.corrupt(path: path, offset: reader.size, reason: "file has \(reader.size) bytes; the manifest says \(info.size)")
            }
            current = reader
            madeNow = true
            return reader
        }
        // Outside this table's lock: closing another takes that one's.
        if madeNow { owner.openTables.opened(self) }
        return reader
    }

    /// The clock reading of its last read.
    var lastReadTick: UInt64 { lastRead.load(ordering: .relaxed) }

    /// Lets the open file go (the next read opens it again).
    func closeReader() { opened.withLock { $0 = nil } }

    /// Removes the file once the last reference is gone.
    func markObsolete() { obsolete.store(true, ordering: .releasing) }

    func overlaps(_ smallest: [UInt8], _ largest: [UInt8]) -> Bool {
        !(info.largest.lexicographicallyPrecedes(smallest) || largest.lexicographicallyPrecedes(info.smallest))
    }
}

/// What the files of a store need to know of it.
final class OwnerState: Sendable {
    /// Set when the background worker fails.
    let failed = Atomic<Bool>(false)
    /// The store's tables with an open reader.
    let openTables: OpenTables

    init(maxOpenTables: Int) { openTables = OpenTables(capacity: maxOpenTables) }
}

/// The tables of a store that hold an open reader (file, index block, filter), at most
/// `capacity`: when one more opens, the least recently read is closed (LevelDB's table
/// cache). Reads stamp their table from a shared clock without a lock; the lock is taken
/// only when a table opens. A table is held weakly: one retired by a compaction goes (and
/// its file is removed) when its last reader lets go, open or not.
final class OpenTables: Sendable {
    let capacity: Int
    private let clock = Atomic<UInt64>(0)
    private let open = Mutex<[ObjectIdentifier: Weak]>([:])

    private struct Weak: Sendable {
        weak var table: TableHandle?
    }

    init(capacity: Int) {
        precondition(capacity >= 1, "at least one open table (KVOptions are validated at open)")
        self.capacity = capacity
    }

    /// The next clock reading.
    func tick() -> UInt64 { clock.add(1, ordering: .relaxed).newValue }

    /// Tables with an open reader now (those since released included until the next open).
    var count: Int { open.withLock { $0.values.filter { $0.table != nil }.count } }

    /// Records that `table` opened its reader; closes the least recently read beyond capacity.
    func opened(_ table: TableHandle) {
        let closing: [TableHandle] = open.withLock { open in
            open[ObjectIdentifier(table)] = Weak(table: table)
            open = open.filter { $0.value.table != nil }
            var closing: [TableHandle] = []
            while open.count > capacity {
                guard let (key, oldest) = open.compactMap({ entry in entry.value.table.map { (entry.key, $0) } })
                    .min(by: { $0.1.lastReadTick < $1.1.lastReadTick }) else { break }
                open.removeValue(forKey: key)
                closing.append(oldest)
            }
            return closing
        }
        for table in closing { table.closeReader() }
    }
}

/// The files of a store at one moment, by level, and the owner's metadata committed with
/// them (docs/KVSTORE.md, "Manifest"). Immutable: each flush or compaction installs a new
/// version; readers keep the one they started with.
final class Version: Sendable {
    /// Level 0: files that may overlap, newest first. Levels 1…: files that do not overlap,
    /// in key order.
    let levels: [[TableHandle]]
    /// What the owner committed with the data (e.g. the log positions the data reflects).
    let metadata: [UInt8]
    /// Incremented by every install.
    let generation: UInt64
    /// The number the next new file gets.
    let nextFileNumber: UInt64

    /// Level 0's sorted runs, newest first: each a range of `levels[0]` (level 0 lists the
    /// files of a run together, in key order, newest run first).
    let level0RunRanges: [Range<Int>]
    /// What a point lookup searches, newest first: each level-0 run, then each sorted level
    /// that holds files.
    let searchRuns: [SearchRun]

    init(levels: [[TableHandle]], metadata: [UInt8], generation: UInt64, nextFileNumber: UInt64) {
        self.levels = levels
        self.metadata = metadata
        self.generation = generation
        self.nextFileNumber = nextFileNumber
        var ranges: [Range<Int>] = []
        for (index, file) in levels[0].enumerated() {
            if let last = ranges.last, levels[0][last.lowerBound].info.run == file.info.run {
                ranges[ranges.count - 1] = last.lowerBound..<(index + 1)
            } else {
                ranges.append(index..<(index + 1))
            }
        }
        level0RunRanges = ranges
        searchRuns = ranges.map { SearchRun(files: levels[0][$0]) } + levels.dropFirst().filter { !$0.isEmpty }.map { SearchRun(files: $0[...]) }
    }

    func bytes(level: Int) -> Int64 { levels[level].reduce(0) { $0 + $1.info.size } }

    /// Level 0's sorted runs, newest first, each in key order.
    var level0Runs: [[TableHandle]] { level0RunRanges.map { Array(levels[0][$0]) } }

    var totalBytes: Int64 { levels.indices.reduce(0) { $0 + bytes(level: $1) } }
    var fileCount: Int { levels.reduce(0) { $0 + $1.count } }

    /// Iterators over every file, newest first: each level-0 file, then one per sorted level.
    func iterators() -> [SortedIterator] {
        var out: [SortedIterator] = []
        for run in level0Runs { out.append(LevelIterator(files: run)) }
        for level in levels.dropFirst() where !level.isEmpty { out.append(LevelIterator(files: level)) }
        return out
    }

    /// The first broken invariant of the levels, or nil. The store stops on one it made
    /// (a bug) and reports one it read (damage).
    func brokenInvariant() -> String? {
        for level in levels.indices.dropFirst() {
            let files = levels[level]
            for (a, b) in zip(files, files.dropFirst()) where !a.info.largest.lexicographicallyPrecedes(b.info.smallest) {
                return "level \(level): files \(a.info.number) and \(b.info.number) overlap or are out of order"
            }
        }
        var runsSeen = Set<UInt64>()
        for run in level0Runs {
            if !runsSeen.insert(run[0].info.run).inserted { return "level 0: the files of run \(run[0].info.run) are not listed together" }
            for (a, b) in zip(run, run.dropFirst()) where !a.info.largest.lexicographicallyPrecedes(b.info.smallest) {
                return "level 0, run \(a.info.run): files \(a.info.number) and \(b.info.number) overlap or are out of order"
            }
        }
        var seen = Set<UInt64>()
        for file in levels.joined() {
            if file.info.largest.lexicographicallyPrecedes(file.info.smallest) { return "file \(file.info.number): largest key below smallest" }
            if file.info.number >= nextFileNumber { return "file \(file.info.number) is numbered beyond the next file number \(nextFileNumber)" }
            if !seen.insert(file.info.number).inserted { return "file \(file.info.number) is listed twice" }
        }
        return nil
    }
}

/// The MANIFEST file: which files make up the store, by level, and the owner's metadata,
/// replaced atomically on every change (docs/KVSTORE.md, "Manifest").
enum ManifestFile {
    static let name = "MANIFEST"
    /// "BKVMAN01" read as a little-endian u64.
    static let magic: UInt64 = 0x3130_4E41_4D56_4B42
    static let version: UInt32 = 1

    struct Contents: Equatable {
        var generation: UInt64
        var nextFileNumber: UInt64
        var metadata: [UInt8]
        var levels: [[TableInfo]]
    }

    static func encode(_ c: Contents) -> [UInt8] {
        var out: [UInt8] = []
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func bytes(_ b: [UInt8]) { u32(UInt32(b.count)); out.append(contentsOf: b) }
        u64(magic)
        u32(version)
        u64(c.generation)
        u64(c.nextFileNumber)
        bytes(c.metadata)
        u32(UInt32(c.levels.count))
        for level in c.levels {
            u32(UInt32(level.count))
            for file in level {
                u64(file.number)
                u64(file.run)
                u64(UInt64(file.size))
                u64(UInt64(file.entries))
                bytes(file.smallest)
                bytes(file.largest)
            }
        }
        u32(CRC32C.checksum(out))
        return out
    }

    static func decode(_ data: [UInt8], path: String) throws -> Contents {
        func corrupt(_ at: Int, _ reason: String) -> KVError { .corrupt(path: path, offset: Int64(at), reason: reason) }
        guard data.count >= 16 else { throw corrupt(0, "manifest of \(data.count) bytes is too short") }
        let stored = data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: data.count - 4, as: UInt32.self)) }
        guard CRC32C.checksum(data[0..<(data.count - 4)]) == stored else { throw corrupt(data.count - 4, "manifest checksum mismatch") }
        return try data.withUnsafeBytes { raw -> Contents in
            var reader = ByteReader(bytes: UnsafeRawBufferPointer(rebasing: raw[0..<(data.count - 4)]))
            func u64() throws -> UInt64 {
                guard let v = reader.littleEndian(UInt64.self) else { throw corrupt(reader.position, "manifest cut short") }
                return v
            }
            func u32() throws -> UInt32 {
                guard let v = reader.littleEndian(UInt32.self) else { throw corrupt(reader.position, "manifest cut short") }
                return v
            }
            func bytes() throws -> [UInt8] {
                let n = Int(try u32())
                guard n <= reader.bytes.count - reader.position else { throw corrupt(reader.position, "length \(n) runs past the manifest") }
                defer { reader.position += n }
                return Array(reader.bytes[reader.position..<(reader.position + n)])
            }
            guard try u64() == magic else { throw corrupt(0, "no manifest magic") }
            let found = try u32()
            guard found == version else { throw KVError.unsupportedVersion(path: path, found: Int(found), supported: Int(version)) }
            let generation = try u64(), next = try u64()
            let metadata = try bytes()
            let levelCount = Int(try u32())
            guard (1...64).contains(levelCount) else { throw corrupt(reader.position, "\(levelCount) levels") }
            var levels: [[TableInfo]] = []
            for _ in 0..<levelCount {
                let count = Int(try u32())
                guard count <= 1 << 20 else { throw corrupt(reader.position, "\(count) files in one level") }
                var files: [TableInfo] = []
                for _ in 0..<count {
                    let number = try u64(), run = try u64(), size = try u64(), entries = try u64()
                    guard size <= UInt64(Int64.max), entries <= UInt64(Int64.max) else { throw corrupt(reader.position, "file sizes out of range") }
                    files.append(TableInfo(number: number, size: Int64(size), entries: Int64(entries), smallest: try bytes(), largest: try bytes(), run: run))
                }
                levels.append(files)
            }
            guard reader.position == reader.bytes.count else { throw corrupt(reader.position, "bytes after the last level") }
            return Contents(generation: generation, nextFileNumber: next, metadata: metadata, levels: levels)
        }
    }
}

/// Files that do not overlap, in key order (a level-0 run or a sorted level), with their
/// key ranges held flat for a point lookup's binary search.
struct SearchRun: Sendable {
    let files: ArraySlice<TableHandle>
    let bounds: RunBounds

    init(files: ArraySlice<TableHandle>) {
        self.files = files
        bounds = RunBounds(files.map { (smallest: $0.info.smallest, largest: $0.info.largest) })
    }

    /// The file whose range holds `key`, or nil.
    func file(containing key: UnsafeRawBufferPointer) -> TableHandle? {
        bounds.file(containing: key).map { files[files.startIndex + $0] }
    }
}

/// The key ranges of files that do not overlap, in key order, held flat: a point lookup's
/// binary search reads them without touching the files' handles. (A handle is weakly
/// referenced by `OpenTables`, which makes each retain and release of it take the
/// runtime's slow path: searching the handles themselves cost a 10,000,000-event store's
/// append ~4 % of its deciding thread.)
struct RunBounds: Sendable {
    /// Each file's largest key, then its smallest, back to back.
    private let keys: [UInt8]
    /// Where each file's largest key starts; its smallest starts at the end of it, and
    /// ends where the next file's largest starts (`keys.count` for the last).
    private let largestStarts: [Int]
    private let smallestStarts: [Int]

    /// The bounds of files whose ranges are given in key order, not overlapping.
    init(_ ranges: [(smallest: [UInt8], largest: [UInt8])]) {
        var keys: [UInt8] = [], largestStarts: [Int] = [], smallestStarts: [Int] = []
        for range in ranges {
            precondition(!range.largest.lexicographicallyPrecedes(range.smallest), "a file's largest key precedes its smallest")
            largestStarts.append(keys.count)
            keys.append(contentsOf: range.largest)
            smallestStarts.append(keys.count)
            keys.append(contentsOf: range.smallest)
        }
        self.keys = keys
        self.largestStarts = largestStarts
        self.smallestStarts = smallestStarts
    }

    /// The position (from 0) of the file whose range holds `key`, or nil.
    func file(containing key: UnsafeRawBufferPointer) -> Int? {
        keys.withUnsafeBytes { all in
            let count = largestStarts.count
            func largest(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: all[largestStarts[i]..<smallestStarts[i]]) }
            func smallest(_ i: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(rebasing: all[smallestStarts[i]..<(i + 1 < count ? largestStarts[i + 1] : all.count)])
            }
            var low = 0, high = count
            while low < high {
                let mid = (low + high) / 2
                if KeyOrder.compare(largest(mid), key) < 0 { low = mid + 1 } else { high = mid }
            }
            guard low < count, KeyOrder.compare(smallest(low), key) <= 0 else { return nil }
            return low
        }
    }
}
