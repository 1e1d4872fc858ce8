import CPrefetch
import EventLog
import Synchronization

/// A sorted key-value store on disk: a log-structured merge tree of immutable table files
/// in levels, with the newest writes in memory (docs/KVSTORE.md). The views and the event
/// store's indexes keep their rows in one each.
///
/// **One writer.** `put`, `delete`, `get`, `freeze` and `flush` are the writer's calls:
/// make them from one task or thread at a time (a second concurrent caller stops the
/// process). In a writable store the writer holds `LOCK` in the directory, so a second
/// writer process fails to open. A background thread writes frozen memtables to level 0
/// and compacts levels; it only ever reads frozen data.
///
/// **Readers.** `snapshot()` may be called from any thread: it sees the files and the
/// frozen memtables as they are at that moment, never the writer's unfrozen writes, and
/// keeps seeing them however the store changes. Another process reads the store by opening
/// it `.readOnly`.
///
/// **Metadata.** The owner commits its own metadata with the data (for a view: the log
/// positions its rows reflect): `freeze(metadata:)` tags everything written so far with
/// it, and the manifest records it atomically with the files that hold that data. After a
/// crash, `metadata` says exactly what the store holds.
public final class KVStore: @unchecked Sendable {
    // @unchecked: `mutable` is touched only by the single writer (checked by `writing`);
    // everything else shared is behind `shared`'s lock or immutable.

    /// Whether a store may write its files.
    public enum Mode: Sendable {
        /// The one writer: takes `LOCK`, flushes and compacts.
        case writable
        /// A reader of another process's store; it may still `put` into memory (an
        /// overlay never written to disk), e.g. to apply a log tail the writer has not.
        case readOnly
    }

    /// Writes committed together: one or more sealed memtables (newest first) and the
    /// owner's metadata. The worker writes them to level 0 as one run.
    struct Frozen {
        let memtables: [Memtable]
        let metadata: [UInt8]
    }

    struct Shared {
        var version: Version
        /// Newest first.
        var frozen: [Frozen] = []
        var failure: KVError?
        var closing = false
        var workerStopped = false
        /// The worker is flushing or compacting.
        var busy = false
        /// Per level: the largest key of the last file compacted from it.
        var pointers: [[UInt8]]
        var stats = Statistics()
    }

    /// Counters for benchmarks and `log stats`-like tools.
    public struct Statistics: Sendable, Equatable {
        public var flushes = 0
        public var compactions = 0
        public var trivialMoves = 0
        public var bytesFlushed: Int64 = 0
        public var bytesCompactedIn: Int64 = 0
        public var bytesCompactedOut: Int64 = 0
        /// Output-level files a compaction's range covered but no input key reached: left as they were.
        public var filesKept = 0
    }

    /// The store's directory.
    public let directory: String
    public let mode: Mode
    let options: KVOptions
    let storage: any Storage
    let cache: BlockCache
    private let shared: ConditionLock<Shared>
    private let lock: (any StorageLock)?
    private var mutable: Memtable {
        didSet { mutableRef = Unmanaged.passUnretained(mutable) }
    }
    /// `mutable` without a reference count: a put called through the property retained
    /// and released the memtable around every entry (the call might replace it), 3–4 % of
    /// a rebuild's projector thread. `mutable` keeps it alive; only `seal` replaces it,
    /// never during a put.
    private var mutableRef: Unmanaged<Memtable>
    /// The writer's sealed but uncommitted memtables, newest first: sorted, readable in
    /// order by the writer (`writerSnapshot`), handed to the worker by the next `freeze`.
    private var sealed: [Memtable] = []
    private let writing = Atomic<Bool>(false)
    private let owner: OwnerState
    private let closed = Atomic<Bool>(false)

    private init(directory: String, mode: Mode, options: KVOptions, storage: any Storage, cache: BlockCache, version: Version,
                 lock: (any StorageLock)?, owner: OwnerState) {
        self.owner = owner
        // A reader's overlay is usually small: its hash index starts small and grows.
        let mutable = Memtable(expectedEntries: mode == .writable ? options.memtableBytes / Self.smallestEntryBytes : 2_048)
        self.mutable = mutable
        self.mutableRef = Unmanaged.passUnretained(mutable)
        self.directory = directory
        self.mode = mode
        self.options = options
        self.storage = storage
        self.cache = cache
        self.lock = lock
        shared = ConditionLock(Shared(version: version, pointers: Array(repeating: [], count: version.levels.count)))
    }

    /// Opens the store in `directory`. A writable open creates it when there is none,
    /// removes files a crashed writer left behind, and starts the background worker. A
    /// read-only open of a directory without a store throws `.missing`.
    public static func open(at directory: String, mode: Mode = .writable, options: KVOptions = KVOptions(),
                            storage: any Storage = PosixStorage()) throws -> KVStore {
        try options.validate()
        let cache = BlockCache(capacityBytes: options.blockCacheBytes)
        var lock: (any StorageLock)?
        do {
            if mode == .writable {
                try storage.createDirectory(directory)
                lock = try storage.lock(directory + "/LOCK")
            }
            let manifestPath = directory + "/" + ManifestFile.name
            guard let data = try storage.readWholeFile(manifestPath) else {
                guard mode == .writable else { throw KVError.missing(path: directory) }
                let empty = ManifestFile.Contents(generation: 0, nextFileNumber: 1, metadata: [], levels: Array(repeating: [], count: options.levels))
                try writeManifest(empty, storage: storage, directory: directory, sync: options.sync)
                let version = Version(levels: Array(repeating: [], count: options.levels), metadata: [], generation: 0, nextFileNumber: 1)
                let store = KVStore(directory: directory, mode: mode, options: options, storage: storage, cache: cache, version: version, lock: lock,
                                    owner: OwnerState(maxOpenTables: options.maxOpenTables))
                try store.removeOrphans()
                try store.startWorker()
                return store
            }
            var contents = try ManifestFile.decode(data, path: manifestPath)
            // A store written with fewer levels grows; more levels than configured are kept.
            while contents.levels.count < options.levels { contents.levels.append([]) }
            let owner = OwnerState(maxOpenTables: options.maxOpenTables)
            let levels = contents.levels.map { $0.map { TableHandle(info: $0, directory: directory, storage: storage, cache: cache, owner: owner) } }
            // A writer checks that every listed file is there (it repairs what is not); a
            // reader finds out when it opens one.
            for file in levels.joined() where mode == .writable && !storage.exists(file.path) {
                throw KVError.corrupt(path: file.path, offset: 0, reason: "the manifest lists this file but it is missing")
            }
            let version = Version(levels: levels, metadata: contents.metadata, generation: contents.generation, nextFileNumber: contents.nextFileNumber)
            if let broken = version.brokenInvariant() { throw KVError.corrupt(path: manifestPath, offset: 0, reason: broken) }
            let store = KVStore(directory: directory, mode: mode, options: options, storage: storage, cache: cache, version: version, lock: lock,
                                owner: owner)
            if mode == .writable {
                try store.removeOrphans()
                try store.startWorker()
            }
            return store
        } catch {
            lock?.release()
            throw KVError.wrap(error)
        }
    }

    // A writable store's worker thread keeps the store alive until `close()`: close it.
    deinit { if !closed.load(ordering: .acquiring) { lock?.release() } }

    /// Removes table files the manifest does not list and temporary files (a writer that
    /// crashed while flushing or compacting left them).
    private func removeOrphans() throws {
        let live = Set(shared.withLock { $0.version.levels.joined().map(\.info.number) })
        for name in try storage.listDirectory(directory) {
            if let number = TableHandle.number(fromFileName: name), !live.contains(number) {
                try storage.remove(directory + "/" + name)
            } else if name.hasSuffix(".tmp") {
                try storage.remove(directory + "/" + name)
            }
        }
    }

    // MARK: Writing (the writer only)

    private func enterWriter() {
        precondition(!writing.exchange(true, ordering: .acquiring), "KVStore \(directory): two writers at once")
    }

    private func leaveWriter() { writing.store(false, ordering: .releasing) }

    private func checkEntry(_ key: UnsafeRawBufferPointer, _ valueCount: Int) throws {
        guard !closed.load(ordering: .relaxed) else { throw KVError.closed }
        guard key.count <= KVOptions.maxKeyBytes else {
            throw KVError.invalidArgument("key of \(key.count) bytes is longer than the limit of \(KVOptions.maxKeyBytes)")
        }
        guard valueCount <= KVOptions.maxValueBytes else {
            throw KVError.invalidArgument("value of \(valueCount) bytes is larger than the limit of \(KVOptions.maxValueBytes)")
        }
    }

    /// Stores `value` under `key` (in memory until frozen and flushed).
    public func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        try checkEntry(key, value.count)
        enterWriter()
        defer { leaveWriter() }
        mutableRef._withUnsafeGuaranteedRef { $0.put(key, value) }
    }

    /// Deletes `key`.
    public func delete(_ key: UnsafeRawBufferPointer) throws {
        try checkEntry(key, 0)
        enterWriter()
        defer { leaveWriter() }
        mutableRef._withUnsafeGuaranteedRef { $0.delete(key) }
    }

    /// `put` with arrays.
    public func put(_ key: [UInt8], _ value: [UInt8]) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try put(k, v) } }
    }

    /// `delete` with an array.
    public func delete(_ key: [UInt8]) throws { try key.withUnsafeBytes { try delete($0) } }

    /// Calls `body` with the newest value of `key` as the writer sees it (its own writes
    /// included), or nil when there is none.
    @inlinable
    public func withValue<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        var result: R?
        try visitValue(key) { result = try body($0) }
        return result!
    }

    /// `withValue` without a generic result (see `KVSnapshot.visitValue`).
    @usableFromInline
    func visitValue(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> Void) throws {
        enterWriter()
        defer { leaveWriter() }
        // The writer's point lookup is the hot path of an append's checks: the key is hashed
        // once for every memtable and filter, and no snapshot is allocated for it.
        let hash = KeyHash.of(key)
        if let ref = mutable.lookup(key, hash: hash) { return try body(mutable.valueOrDeletion(ref)) }
        for table in sealed {
            if let ref = table.lookup(key, hash: hash) { return try body(table.valueOrDeletion(ref)) }
        }
        // Held until the search ends, so that its files stay on disk whatever compactions do.
        let (version, frozen) = shared.withLock { ($0.version, $0.frozen) }
        for group in frozen {
            for table in group.memtables {
                if let ref = table.lookup(key, hash: hash) { return try body(table.valueOrDeletion(ref)) }
            }
        }
        try KVSnapshot.visitValue(in: version, key, hash: hash, body)
    }

    /// Keys a batched lookup works on at a time: the cache lines it asks for stay cached
    /// until it reads them.
    static let batchLookupKeys = 256

    /// Point lookups of many keys, as the writer sees them: calls `body(i, value)` once for
    /// each key `i` (value nil when it has none), in no particular order — the answers of
    /// one `withValue` per key. Faster for many keys: a key that is nowhere costs a cache
    /// miss in every memtable and in every file's filter it might be in, and one at a time
    /// those misses follow one another; here each step asks for the lines of all its keys
    /// before it reads any, so their misses overlap (RocksDB's MultiGet does the same).
    /// `keys` holds keys of `keyLength` bytes back to back.
    public func withValues(packedKeys keys: UnsafeRawBufferPointer, keyLength: Int,
                           _ body: (Int, UnsafeRawBufferPointer?) throws -> Void) throws {
        precondition(keyLength > 0 && keys.count % keyLength == 0, "withValues: \(keys.count) bytes are not keys of \(keyLength)")
        enterWriter()
        defer { leaveWriter() }
        let (version, frozen) = shared.withLock { ($0.version, $0.frozen) }
        let memtables = [mutable] + sealed + frozen.flatMap(\.memtables)
        let count = keys.count / keyLength
        var start = 0
        while start < count {
            let end = min(count, start + Self.batchLookupKeys)
            try lookUp(start..<end, of: keys, keyLength: keyLength, memtables: memtables, version: version, body)
            start = end
        }
    }

    private func lookUp(_ range: Range<Int>, of keys: UnsafeRawBufferPointer, keyLength: Int, memtables: [Memtable], version: Version,
                        _ body: (Int, UnsafeRawBufferPointer?) throws -> Void) throws {
        func key(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: keys[i * keyLength..<(i + 1) * keyLength]) }
        var hashes = [UInt64](repeating: 0, count: range.count)
        for i in range { hashes[i - range.lowerBound] = KeyHash.of(key(i)) }
        func hash(_ i: Int) -> UInt64 { hashes[i - range.lowerBound] }
        var unanswered = Array(range)
        for table in memtables where !unanswered.isEmpty {
            for i in unanswered { table.prefetchSlot(hash: hash(i)) }
            unanswered = try unanswered.filter { i in
                guard let ref = table.lookup(key(i), hash: hash(i)) else { return true }
                try body(i, table.valueOrDeletion(ref))
                return false
            }
        }
        for run in version.searchRuns where !unanswered.isEmpty {
            // Each file's reader and filter taken once (under their locks), then each key's
            // filter line asked for, then each key looked up.
            var readers = [TableReader?](repeating: nil, count: run.files.count), filters = [Block?](repeating: nil, count: run.files.count)
            var candidates: [(key: Int, file: Int)] = []
            for i in unanswered {
                guard let f = run.bounds.file(containing: key(i)) else { continue }
                candidates.append((i, f))
                if readers[f] == nil {
                    readers[f] = try run.files[run.files.startIndex + f].reader()
                    filters[f] = readers[f]!.loadedFilter
                }
                if let filter = filters[f], let base = filter.bytes.baseAddress, let line = BloomFilter.lineStart(in: filter.bytes, hash: hash(i)) {
                    backorder_prefetch(base + line)
                }
            }
            var answered: [Int] = []
            for (i, f) in candidates where try readers[f]!.find(key(i), hash: hash(i), { try body(i, $0) }) { answered.append(i) }
            if !answered.isEmpty {
                let done = Set(answered)
                unanswered.removeAll { done.contains($0) }
            }
        }
        for i in unanswered { try body(i, nil) }
    }

    /// The newest value of `key` as the writer sees it, or nil.
    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in try withValue(k) { $0.map { Array($0) } } }
    }

    /// Whether the writes in memory have reached the memtable's budget: the owner should
    /// `freeze` at its next consistent point.
    public var needsFreeze: Bool { memtableBytes >= options.memtableBytes }

    /// Bytes of memory the unfrozen writes hold.
    public var memtableBytes: Int { sealed.reduce(mutable.memoryBytes) { $0 + $1.memoryBytes } }

    /// A read view that includes the writer's own uncommitted writes (sealing them: they
    /// become sorted, and stay the writer's until the next `freeze`). Writer only; use it
    /// before writing again, or take a new one.
    public func writerSnapshot() -> KVSnapshot {
        enterWriter()
        defer { leaveWriter() }
        seal(forSnapshot: true)
        return shared.withLock { s in
            KVSnapshot(version: s.version, frozen: sealed + s.frozen.flatMap(\.memtables), metadata: s.frozen.first?.metadata ?? s.version.metadata)
        }
    }

    /// Ends the mutable memtable without committing it. The next one is sized for a whole
    /// memtable's writes after a freeze; after a snapshot's seal it starts small and grows
    /// (a writer that takes snapshots often would otherwise allocate and zero a full-size
    /// index for each, and reach `needsFreeze` after a few).
    /// The size a writable memtable's hash index is made for: entries of this many bytes
    /// (arena and index) fill the budget. Views write many small rows (postings with empty
    /// values, ~50–70 bytes); an index made for fewer grows, rehashing every key, while
    /// the writer waits.
    static let smallestEntryBytes = 64

    private func seal(forSnapshot: Bool = false) {
        guard !mutable.isEmpty else { return }
        mutable.freeze()
        sealed.insert(mutable, at: 0)
        mutable = Memtable(expectedEntries: mode == .writable && !forSnapshot ? options.memtableBytes / Self.smallestEntryBytes : 2_048)
    }

    /// Ends the current memtable: everything written so far becomes immutable, readable
    /// by snapshots, and tagged with `metadata`, which the manifest records once it is on
    /// disk. In a writable store the background worker writes it to level 0; `freeze`
    /// waits while `maxFrozenMemtables` are already waiting, or while level 0 is at its
    /// stop trigger. A read-only store keeps frozen memtables in memory.
    public func freeze(metadata: [UInt8]) throws {
        enterWriter()
        defer { leaveWriter() }
        guard !closed.load(ordering: .relaxed) else { throw KVError.closed }
        seal()
        let tables = sealed
        sealed = []
        try shared.wait(until: { s in
            s.failure != nil || self.mode == .readOnly
                || (s.frozen.count < self.options.maxFrozenMemtables && s.version.level0RunRanges.count < self.options.level0StopTrigger)
        }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
            s.frozen.insert(Frozen(memtables: tables, metadata: metadata), at: 0)
        }
        shared.broadcast()
    }

    /// Waits until every frozen memtable is on disk (writable stores), or throws the
    /// worker's failure.
    public func flush() throws {
        guard mode == .writable else { return }
        try shared.wait(until: { $0.frozen.isEmpty || $0.failure != nil || $0.workerStopped }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
            guard s.frozen.isEmpty else { throw KVError.closed }
        }
    }

    /// Waits until everything frozen is flushed and no level needs compacting (for
    /// benchmarks and tests: writers never need to).
    public func settle() throws {
        try flush()
        guard mode == .writable else { return }
        try shared.wait(until: { s in
            s.failure != nil || s.workerStopped || (s.frozen.isEmpty && !s.busy && Compaction.neededLevel(s.version, options: self.options) == nil)
        }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
        }
    }

    /// The metadata of the newest frozen writes, or else of the files on disk.
    public var metadata: [UInt8] { shared.withLock { $0.frozen.first?.metadata ?? $0.version.metadata } }

    /// The metadata the files on disk were committed with (what survives a crash).
    public var committedMetadata: [UInt8] { shared.withLock { $0.version.metadata } }

    /// Table files open now (at most `KVOptions.maxOpenTables`).
    public var openTableCount: Int { owner.openTables.count }

    /// A consistent read view of the frozen writes and the files, usable from any thread.
    public func snapshot() -> KVSnapshot {
        shared.withLock { KVSnapshot(version: $0.version, frozen: $0.frozen.flatMap(\.memtables), metadata: $0.frozen.first?.metadata ?? $0.version.metadata) }
    }

    /// Files per level, bytes per level, and counters.
    public var shape: (files: [Int], bytes: [Int64], stats: Statistics) {
        shared.withLock { s in (s.version.levels.map(\.count), s.version.levels.indices.map { s.version.bytes(level: $0) }, s.stats) }
    }

    /// Opens every file the manifest lists and checks its size, footer and index block
    /// (data blocks are checked as they are read). Throws `.corrupt` naming the file.
    public func checkFiles() throws {
        let files = shared.withLock { Array($0.version.levels.joined()) }
        do { for file in files { _ = try file.reader() } } catch { throw KVError.wrap(error) }
    }

    /// Bytes of all table files.
    public var diskBytes: Int64 { shared.withLock { $0.version.totalBytes } }

    /// Flushes what is frozen, does any compaction level 0 urgently needs, stops the
    /// background worker and releases the lock. Unfrozen writes are discarded: freeze
    /// first what must survive. Throws when a flush failed (then what the manifest holds
    /// is what survives).
    public func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        defer { lock?.release() }
        guard mode == .writable else { return }
        shared.withLock { $0.closing = true }
        shared.broadcast()
        try shared.wait(until: { $0.workerStopped }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
        }
    }

    // MARK: Background worker

    private func startWorker() throws {
        guard mode == .writable else { return }
        try startThread(name: "kv-worker") { [self] in self.runWorker() }
    }

    private enum Job {
        case flush(Frozen)
        case compact(Compaction)
        case stop
    }

    private func runWorker() {
        while true {
            let job: Job = shared.wait(until: { s in
                s.failure != nil || s.closing || !s.frozen.isEmpty || Compaction.neededLevel(s.version, options: self.options) != nil
            }, timeoutNanoseconds: nil) { s in
                if s.failure != nil { return .stop }
                s.busy = true
                if let oldest = s.frozen.last { return .flush(oldest) }
                guard let compaction = Compaction.pick(s.version, options: self.options, pointers: s.pointers) else { return .stop }
                if s.closing {
                    // At close only what level 0 needs (reads check every level-0 run), and
                    // only while its runs are small: a close must not take seconds of a
                    // deeper level's debt, which the next long-lived writer (or `settle`) pays.
                    // The same test as `writeCompactionOutput`'s: a compaction started here
                    // and then abandoned would be picked again, forever.
                    guard s.version.level0RunRanges.count >= self.options.level0CompactionTrigger, self.mayFinishAtClose(compaction) else { return .stop }
                }
                return .compact(compaction)
            }
            do {
                switch job {
                case let .flush(frozen): try flush(frozen)
                case var .compact(compaction):
                    try compaction.refine()
                    do { try compact(compaction) } catch is CompactionAbandoned {
                        // Closing: the inputs are intact and the outputs removed; a later
                        // writer compacts them.
                    }
                case .stop:
                    shared.withLock { $0.workerStopped = true; $0.busy = false }
                    shared.broadcast()
                    return
                }
            } catch {
                owner.failed.store(true, ordering: .releasing)
                shared.withLock { s in if s.failure == nil { s.failure = .workerFailed("\(KVError.wrap(error))") } }
            }
            shared.withLock { $0.busy = false }
            shared.broadcast()
        }
    }

    private func newFileNumber() -> UInt64 {
        shared.withLock { s in
            let number = s.version.nextFileNumber
            s.version = Version(levels: s.version.levels, metadata: s.version.metadata, generation: s.version.generation, nextFileNumber: number + 1)
            return number
        }
    }

    private func flush(_ frozen: Frozen) throws {
        let input: SortedIterator = frozen.memtables.count == 1 ? MemtableIterator(frozen.memtables[0])
            : MergingIterator(frozen.memtables.map { MemtableIterator($0) })
        var outputs: [TableInfo] = []
        var builder: TableBuilder?
        do {
            try input.seekToFirst()
            while input.isValid {
                let key = input.key
                if let current = builder, current.estimatedBytes >= Int64(options.targetFileBytes / 16),
                   current.estimatedBytes >= Int64(options.targetFileBytes) || startsPartition(key, after: current.lastKeyBytes) {
                    outputs.append(try current.finish())
                    builder = nil
                }
                if builder == nil {
                    let number = newFileNumber()
                    builder = try TableBuilder(storage: storage, path: directory + "/" + TableHandle.fileName(number), number: number, options: options)
                }
                try builder?.add(key, input.value, deleted: input.isDeletion)
                try input.next()
            }
            if let current = builder { outputs.append(try current.finish()) }
            builder = nil
        } catch {
            removeUnfinished(outputs, builder)
            throw error
        }
        let current = shared.withLock { $0.version }
        var levels = current.levels
        // The files of one flush are one run, in key order, before the older runs.
        let run = outputs.first?.number ?? 0
        levels[0].insert(contentsOf: outputs.map { info -> TableHandle in
            var info = info
            info.run = run
            return TableHandle(info: info, directory: directory, storage: storage, cache: cache, owner: owner)
        }, at: 0)
        let next = Version(levels: levels, metadata: frozen.metadata, generation: current.generation + 1,
                           nextFileNumber: shared.withLock { $0.version.nextFileNumber })
        try install(next)
        shared.withLock { s in
            precondition(s.frozen.last?.memtables.first === frozen.memtables.first, "frozen memtables are flushed oldest first")
            s.frozen.removeLast()
            s.stats.flushes += 1
            s.stats.bytesFlushed += outputs.reduce(0) { $0 + $1.size }
        }
    }

    private func compact(_ compaction: Compaction) throws {
        let current = shared.withLock { $0.version }
        var levels = current.levels
        let inputNumbers = Set(compaction.allInputs.map(\.info.number))
        var outputs: [TableHandle] = []
        if compaction.isTrivialMove {
            outputs = compaction.inputs
        } else {
            let written = try writeCompactionOutput(compaction)
            let run = compaction.outputLevel == 0 ? (written.first?.number ?? 0) : 0
            outputs = written.map { info -> TableHandle in
                var info = info
                info.run = run
                return TableHandle(info: info, directory: directory, storage: storage, cache: cache, owner: owner)
            }
        }
        levels[compaction.level].removeAll { inputNumbers.contains($0.info.number) }
        if compaction.outputLevel != compaction.level { levels[compaction.outputLevel].removeAll { inputNumbers.contains($0.info.number) } }
        if compaction.outputLevel == 0 {
            // The inputs were the newest runs (or all of level 0): the merged run takes their
            // place, newest, before the older runs.
            precondition(current.levels[0].prefix(compaction.inputs.count).map(\.info.number) == compaction.inputs.map(\.info.number),
                         "a level-0 merge takes the newest runs")
            levels[0] = outputs + levels[0]
        } else {
            levels[compaction.outputLevel].append(contentsOf: outputs)
            levels[compaction.outputLevel].sort { $0.info.smallest.lexicographicallyPrecedes($1.info.smallest) }
        }
        let next = Version(levels: levels, metadata: current.metadata, generation: current.generation + 1,
                           nextFileNumber: shared.withLock { $0.version.nextFileNumber })
        try install(next)
        let kept = Set(outputs.map(\.info.number))
        for file in compaction.allInputs where !kept.contains(file.info.number) { file.markObsolete() }
        shared.withLock { s in
            if compaction.level > 0, let last = compaction.inputs.last { s.pointers[compaction.level] = last.info.largest }
            if compaction.isTrivialMove { s.stats.trivialMoves += 1 } else { s.stats.compactions += 1 }
            s.stats.filesKept += compaction.kept.count
            s.stats.bytesCompactedIn += compaction.allInputs.reduce(0) { $0 + $1.info.size }
            s.stats.bytesCompactedOut += outputs.reduce(0) { $0 + $1.info.size }
        }
    }

    /// A compaction given up because the store is closing (not a failure).
    private struct CompactionAbandoned: Error {}

    /// Whether a compaction may keep a closing store waiting: only a merge of small level-0
    /// runs (see `runWorker`) — a tiered store's merge of large runs is left for later.
    private func mayFinishAtClose(_ compaction: Compaction) -> Bool {
        compaction.level == 0 && compaction.outputLevel == 0
            && compaction.inputs.reduce(Int64(0)) { $0 + $1.info.size } * 8 < options.level1Bytes
    }

    /// Merges the compaction's inputs into new files cut at `targetFileBytes`, and before
    /// any kept file of the output level, so that no output overlaps one. A compaction that
    /// may not keep a closing store waiting stops (and removes its outputs) when `close()`
    /// is called.
    private func writeCompactionOutput(_ compaction: Compaction) throws -> [TableInfo] {
        let input = compaction.makeInput()
        let abandonable = !mayFinishAtClose(compaction)
        let dropsDeletions = compaction.isBottom
        let cutBytes = Int64(options.targetFileBytes), partitionCutBytes = Int64(options.targetFileBytes / 16)
        var steps = 0
        let kept = compaction.kept
        var nextKept = 0
        var outputs: [TableInfo] = []
        var unfinished: TableBuilder?
        /// Moves the input on (and gives up when the store is closing, if it may).
        func step() throws {
            try input.next()
            steps += 1
            if abandonable && steps & 4095 == 0 && closed.load(ordering: .relaxed) { throw CompactionAbandoned() }
        }
        do {
            try input.seekToFirst()
            // One output file per turn, started at an entry that is written (a file is never
            // empty): entries go in until the file reaches its size, a kept file of the output
            // level must not be overlapped, or (past a sixteenth of the size) a partition ends.
            files: while true {
                while input.isValid && input.isDeletion && dropsDeletions { try step() }
                guard input.isValid else { break files }
                let number = newFileNumber()
                let builder = try TableBuilder(storage: storage, path: directory + "/" + TableHandle.fileName(number), number: number, options: options)
                unfinished = builder
                entries: while input.isValid {
                    if input.isDeletion && dropsDeletions {
                        try step()
                        continue entries
                    }
                    if nextKept < kept.count {
                        // Passing a kept file: the current output must end before it.
                        var crossed = false
                        while nextKept < kept.count, kept[nextKept].info.largest.withUnsafeBytes({ KeyOrder.compare($0, input.key) }) < 0 {
                            crossed = true
                            nextKept += 1
                        }
                        if crossed && builder.entries > 0 { break entries }
                        precondition(nextKept >= kept.count || !kept[nextKept].contains(input.key),
                                     "compaction: a key falls inside a file that was kept (refine is not conservative)")
                    }
                    if builder.entries > 0 && builder.estimatedBytes >= partitionCutBytes && startsPartition(input.key, after: builder.lastKeyBytes) {
                        break entries
                    }
                    try builder.add(input.key, input.value, deleted: input.isDeletion)
                    try step()
                    if builder.estimatedBytes >= cutBytes { break entries }
                }
                outputs.append(try builder.finish())
                unfinished = nil
            }
        } catch {
            removeUnfinished(outputs, unfinished)
            throw error
        }
        return outputs
    }

    /// After a failed flush or compaction: its finished outputs and the file it was writing
    /// are removed (the inputs are intact; nothing refers to the outputs yet).
    private func removeUnfinished(_ outputs: [TableInfo], _ builder: TableBuilder?) {
        builder?.abandon()
        for path in outputs.map({ directory + "/" + TableHandle.fileName($0.number) }) + (builder.map { [$0.path] } ?? []) {
            try? storage.remove(path)
        }
    }

    /// Whether `key` starts another partition than `previous` (see `partitionPrefixLength`).
    private func startsPartition(_ key: UnsafeRawBufferPointer, after previous: UnsafeRawBufferPointer) -> Bool {
        guard let prefix = options.partitionPrefixLength else { return false }
        let a = min(prefix(key), key.count), b = min(prefix(previous), previous.count)
        return a != b || KeyOrder.compare(UnsafeRawBufferPointer(rebasing: key[0..<a]), UnsafeRawBufferPointer(rebasing: previous[0..<b])) != 0
    }

    /// Writes the version's manifest, then makes it current.
    private func install(_ version: Version) throws {
        if let broken = version.brokenInvariant() { preconditionFailure("KVStore \(directory): \(broken)") }
        let contents = ManifestFile.Contents(generation: version.generation, nextFileNumber: version.nextFileNumber, metadata: version.metadata,
                                             levels: version.levels.map { $0.map(\.info) })
        try Self.writeManifest(contents, storage: storage, directory: directory, sync: options.sync)
        shared.withLock { $0.version = version }
    }

    private static func writeManifest(_ contents: ManifestFile.Contents, storage: any Storage, directory: String, sync: Bool) throws {
        let bytes = ManifestFile.encode(contents)
        if sync {
            do { try storage.writeAtomically(bytes, directory: directory, name: ManifestFile.name) } catch {
                // A full disk: leave nothing behind (the old MANIFEST is intact).
                try? storage.remove(directory + "/" + ManifestFile.name + ".tmp")
                throw error
            }
        } else {
            let temporary = directory + "/" + ManifestFile.name + ".tmp"
            let file = try storage.open(temporary, create: true, writable: true)
            defer { file.close() }
            try file.truncate(to: 0)
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            try storage.rename(temporary, to: directory + "/" + ManifestFile.name)
        }
    }
}

