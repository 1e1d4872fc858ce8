import CPrefetch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The newest writes of a store, in memory: an append-only arena of entries and a hash
/// index from key to its newest entry (docs/KVSTORE.md, "Memtable").
///
/// Written by one thread (the store's writer) until `freeze()`; from then on it never
/// changes and any thread may read it, by key (the hash index) or in key order (the
/// entries sorted once, by the first reader that walks them in order). Old versions of a
/// key stay in the arena but are not reachable: the index points at the newest.
///
/// Entry layout in the arena: u32 key length, u32 value length with bit 31 set for a
/// deletion, the key's bytes, the value's bytes. An entry's reference is
/// `(chunk + 1) << 32 | offset`, so 0 means "no entry".
final class Memtable: @unchecked Sendable {
    // @unchecked: the writer thread mutates it before `freeze()`; afterwards it is
    // immutable, and it is published to readers only through the store's lock.

    /// Arena chunks are this large (an entry larger than a chunk gets a chunk of its own).
    static let chunkBytes = 1 << 20
    private static let deletedFlag: UInt32 = 1 << 31

    /// Base addresses of the arena's chunks (a raw table, not an Array: entry access is the
    /// hot path of reads and flushes, and must not retain anything).
    private var chunks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private var chunkCount = 0
    private var chunkSlots = 64
    private var chunkUsed = 0
    private var chunkCapacity = 0
    private var slotRefs: UnsafeMutablePointer<UInt64>
    private var slotHashes: UnsafeMutablePointer<UInt32>
    private var capacity: Int
    /// Distinct keys.
    private(set) var count = 0
    /// Bytes of memory held (arena and index).
    private(set) var memoryBytes = 0
    /// Bytes of keys and values of the newest versions (an estimate of the flushed size).
    private(set) var liveBytes = 0
    /// Entries in the arena whose index slots are not set yet, with their keys' hashes:
    /// the index is updated `pendingLimit` entries at a time, their slots' cache lines
    /// loaded together first — loads that do not wait for one another, so their misses
    /// overlap — where inserting one entry at a time waited for each miss in turn (a
    /// rebuild of the records view spent 17 % of its projector thread on those waits).
    /// Every read of the index sets them first.
    private let pendingRefs: UnsafeMutablePointer<UInt64>
    private let pendingHashes: UnsafeMutablePointer<UInt64>
    private var pendingCount = 0
    static let pendingLimit = 32
    /// What the last batch's loads read, kept so that the compiler keeps the loads.
    private var prefetched: UInt64 = 0
    /// References of the entries in key order: sorted when first asked for (`sorted`), not
    /// by `freeze` — the store's background worker usually asks first (its flush), so the
    /// sort runs beside the writer instead of holding it up (the event index's sort left
    /// the ingest's deciding thread so; a writer that walks its own sealed writes, as the
    /// records view's commit does, still sorts them itself).
    private let order = Mutex<[UInt64]?>(nil)
    private(set) var isFrozen = false

    /// A memtable whose hash index starts with room for about `expectedEntries` keys.
    init(expectedEntries: Int = 2_048) {
        chunks = .allocate(capacity: chunkSlots)
        var size = 1 << 12
        while size < expectedEntries * 2 && size < 1 << 24 { size <<= 1 }
        capacity = size
        slotRefs = .allocate(capacity: capacity)
        slotRefs.initialize(repeating: 0, count: capacity)
        slotHashes = .allocate(capacity: capacity)
        slotHashes.initialize(repeating: 0, count: capacity)
        memoryBytes = capacity * 12
        pendingRefs = .allocate(capacity: Self.pendingLimit)
        pendingHashes = .allocate(capacity: Self.pendingLimit)
    }

    deinit {
        for i in 0..<chunkCount { chunks[i].deallocate() }
        chunks.deallocate()
        slotRefs.deallocate()
        slotHashes.deallocate()
        pendingRefs.deallocate()
        pendingHashes.deallocate()
    }

    var isEmpty: Bool { count == 0 && pendingCount == 0 }

    // MARK: Writing

    /// Stores `value` under `key`, replacing any earlier value.
    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        insert(key, value, deleted: false)
    }

    /// Records that `key` is deleted (hides older versions in files below).
    func delete(_ key: UnsafeRawBufferPointer) {
        insert(key, UnsafeRawBufferPointer(start: nil, count: 0), deleted: true)
    }

    private func insert(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, deleted: Bool) {
        precondition(!isFrozen, "a frozen memtable is never written")
        precondition(key.count <= KVOptions.maxKeyBytes && value.count <= KVOptions.maxValueBytes, "entry beyond the limits (checked by the store)")
        pendingRefs[pendingCount] = append(key, value, deleted: deleted)
        pendingHashes[pendingCount] = KeyHash.of(key)
        pendingCount += 1
        if pendingCount == Self.pendingLimit { indexPending() }
    }

    /// Sets the index slots of the pending entries, in the order they were written (a
    /// later entry of a key replaces an earlier one).
    private func indexPending() {
        guard pendingCount > 0 else { return }
        while (count + pendingCount) * 2 > capacity { grow() }
        let mask = capacity - 1
        // The slots' lines, then the keys of the entries they hold that may be the same
        // key (a rewrite): two rounds of independent loads before the dependent work.
        var loaded: UInt64 = 0
        for i in 0..<pendingCount {
            let slot = Int(truncatingIfNeeded: pendingHashes[i]) & mask
            loaded ^= slotRefs[slot] ^ UInt64(slotHashes[slot])
        }
        for i in 0..<pendingCount {
            let slot = Int(truncatingIfNeeded: pendingHashes[i]) & mask
            let existing = slotRefs[slot]
            if existing != 0 && slotHashes[slot] == Self.fragment(pendingHashes[i]) {
                loaded ^= UInt64(entryBase(existing).load(as: UInt32.self))
            }
        }
        prefetched = loaded
        for i in 0..<pendingCount { index(pendingRefs[i], hash: pendingHashes[i], mask: mask) }
        pendingCount = 0
    }

    /// The 32 bits of a key's hash its slot keeps (never 0, the empty slot's).
    @inline(__always)
    private static func fragment(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    /// Points the key's slot at entry `ref`.
    @inline(__always)
    private func index(_ ref: UInt64, hash: UInt64, mask: Int) {
        let fragment = Self.fragment(hash)
        let key = self.key(ref)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let existing = slotRefs[slot]
            if existing == 0 {
                slotRefs[slot] = ref
                slotHashes[slot] = fragment
                count += 1
                liveBytes += key.count + value(ref).count + 8
                return
            }
            if slotHashes[slot] == fragment, KeyOrder.compare(self.key(existing), key) == 0 {
                liveBytes += value(ref).count - value(existing).count
                slotRefs[slot] = ref
                return
            }
            slot = (slot + 1) & mask
        }
    }

    private func append(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, deleted: Bool) -> UInt64 {
        let size = 8 + key.count + value.count
        if chunkCount == 0 || chunkUsed + size > chunkCapacity {
            let bytes = max(Self.chunkBytes, size)
            if chunkCount == chunkSlots {
                let grown = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: chunkSlots * 2)
                grown.moveInitialize(from: chunks, count: chunkCount)
                chunks.deallocate()
                chunks = grown
                chunkSlots *= 2
            }
            (chunks + chunkCount).initialize(to: .allocate(byteCount: bytes, alignment: 8))
            chunkCount += 1
            chunkUsed = 0
            chunkCapacity = bytes
            memoryBytes += bytes
        }
        let base = chunks[chunkCount - 1] + chunkUsed
        base.storeBytes(of: UInt32(key.count), as: UInt32.self)
        base.storeBytes(of: UInt32(value.count) | (deleted ? Self.deletedFlag : 0), toByteOffset: 4, as: UInt32.self)
        if let k = key.baseAddress, key.count > 0 { (base + 8).copyMemory(from: k, byteCount: key.count) }
        if let v = value.baseAddress, value.count > 0 { (base + 8 + key.count).copyMemory(from: v, byteCount: value.count) }
        let ref = UInt64(chunkCount) << 32 | UInt64(chunkUsed)
        // Entries stay 4-byte aligned so their length fields load aligned.
        chunkUsed += (size + 3) & ~3
        return ref
    }

    private func grow() {
        let oldRefs = slotRefs, oldHashes = slotHashes, oldCapacity = capacity
        capacity *= 2
        slotRefs = .allocate(capacity: capacity)
        slotRefs.initialize(repeating: 0, count: capacity)
        slotHashes = .allocate(capacity: capacity)
        slotHashes.initialize(repeating: 0, count: capacity)
        let mask = capacity - 1
        for i in 0..<oldCapacity where oldRefs[i] != 0 {
            var slot = Int(truncatingIfNeeded: KeyHash.of(key(oldRefs[i]))) & mask
            while slotRefs[slot] != 0 { slot = (slot + 1) & mask }
            slotRefs[slot] = oldRefs[i]
            slotHashes[slot] = oldHashes[i]
        }
        oldRefs.deallocate()
        oldHashes.deallocate()
        memoryBytes += oldCapacity * 12
    }

    /// Ends writing: after this the memtable is immutable. Its entries are sorted by key
    /// later, by the first walk in order (`sorted`); the memory the order takes is counted
    /// now, so that the store's accounting does not depend on who walks first.
    func freeze() {
        guard !isFrozen else { return }
        indexPending()
        memoryBytes += count * 8
        isFrozen = true
    }

    /// References of the newest entries in key order (frozen memtables only): sorted by the
    /// first caller, on its thread; later callers (any thread) share that array.
    var sorted: [UInt64] {
        precondition(isFrozen, "only a frozen memtable is read in order")
        return order.withLock { order in
            if let order { return order }
            var pairs = [SortPair]()
            pairs.reserveCapacity(count)
            for i in 0..<capacity where slotRefs[i] != 0 { pairs.append(SortPair(chunk: 0, ref: slotRefs[i])) }
            pairs.withUnsafeMutableBufferPointer { sortByKey($0, depth: 0) }
            let refs = pairs.map(\.ref)
            precondition(refs.count == count, "the index holds every key once")
            order = refs
            return refs
        }
    }

    /// An entry reference with 8 bytes of its key, for sorting, and its key's length (read
    /// once, in the first round: later rounds need it and would miss the cache again).
    struct SortPair {
        var chunk: UInt64
        var ref: UInt64
        var keyLength = 0
    }

    /// How far ahead a round of the sort asks for the key bytes it will load (the entries of
    /// a group sit anywhere in the arena: each load is a miss).
    static let sortPrefetchDistance = 16

    /// Sorts entries by key, 8 bytes at a time: each round loads the next 8 key bytes of
    /// every entry of a group (big-endian, so integer order is byte order) and sorts on
    /// them, then sorts each run of equal chunks on the following 8 bytes. Keys that share
    /// long prefixes (a tenant, an index kind) cost one cheap round per 8 shared bytes
    /// instead of a full comparison per step of a comparison sort.
    private func sortByKey(_ pairs: UnsafeMutableBufferPointer<SortPair>, depth: Int) {
        guard pairs.count > 1 else { return }
        let ahead = Self.sortPrefetchDistance
        for i in pairs.indices {
            if i + ahead < pairs.count { backorder_prefetch(entryBase(pairs[i + ahead].ref) + 8 + depth) }
            if depth == 0 { pairs[i].keyLength = key(pairs[i].ref).count }
            pairs[i].chunk = chunk8(pairs[i].ref, depth, keyLength: pairs[i].keyLength)
        }
        Self.sortByChunk(pairs)
        var start = 0
        while start < pairs.count {
            var end = start + 1
            while end < pairs.count && pairs[end].chunk == pairs[start].chunk { end += 1 }
            if end - start > 1 {
                let run = UnsafeMutableBufferPointer(rebasing: pairs[start..<end])
                // Equal 8 bytes: keys that end within them are ordered by length (shorter
                // first); the rest go on to the next 8 bytes.
                var shortEnd = 0
                for i in run.indices where run[i].keyLength <= depth + 8 {
                    run.swapAt(i, shortEnd)
                    shortEnd += 1
                }
                var short = UnsafeMutableBufferPointer(rebasing: run[0..<shortEnd])
                short.sort { $0.keyLength < $1.keyLength }
                sortByKey(UnsafeMutableBufferPointer(rebasing: run[shortEnd...]), depth: depth + 8)
            }
            start = end
        }
    }

    /// Groups smaller than this are sorted by comparison; larger ones by radix.
    static let radixSortThreshold = 128

    /// Sorts `pairs` by `chunk`, in place: large groups by a most-significant-byte-first
    /// radix sort (American flag sort: count each byte's values, then swap every pair into
    /// its value's range), which steps over the bytes all chunks of a range share — the
    /// keys of one memtable share most of their leading bytes. A comparison sort of a
    /// 16 MiB memtable's ~200,000 entries cost a rebuild of the records view 8 % of its
    /// projector thread. Not stable: equal chunks are ordered by the caller's next round.
    static func sortByChunk(_ pairs: UnsafeMutableBufferPointer<SortPair>) {
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 2 * 256)
        defer { counts.deallocate() }
        sortByChunk(pairs, shift: 56, counts: counts)
    }

    private static func sortByChunk(_ pairs: UnsafeMutableBufferPointer<SortPair>, shift: UInt64, counts: UnsafeMutableBufferPointer<Int>) {
        var pairs = pairs
        guard pairs.count >= radixSortThreshold else {
            pairs.sort { $0.chunk < $1.chunk }
            return
        }
        @inline(__always) func digit(_ pair: SortPair) -> Int { Int(truncatingIfNeeded: (pair.chunk >> shift) & 0xFF) }
        // counts[0..<256]: where each value's range ends; counts[256...]: the next free
        // place in it.
        let ends = UnsafeMutableBufferPointer(rebasing: counts[0..<256]), next = UnsafeMutableBufferPointer(rebasing: counts[256..<512])
        ends.update(repeating: 0)
        for pair in pairs { ends[digit(pair)] += 1 }
        if ends[digit(pairs[0])] == pairs.count {
            // One value for every pair: nothing to move at this byte.
            if shift > 0 { sortByChunk(pairs, shift: shift - 8, counts: counts) }
            return
        }
        var start = 0
        for value in 0..<256 {
            next[value] = start
            start += ends[value]
            ends[value] = start
        }
        for value in 0..<256 {
            while next[value] < ends[value] {
                var pair = pairs[next[value]]
                var d = digit(pair)
                while d != value {
                    swap(&pair, &pairs[next[d]])
                    next[d] += 1
                    d = digit(pair)
                }
                pairs[next[value]] = pair
                next[value] += 1
            }
        }
        guard shift > 0 else { return }
        // `counts` is reused by the recursion: take the ranges first.
        var ranges: [Range<Int>] = []
        start = 0
        for value in 0..<256 {
            if ends[value] - start > 1 { ranges.append(start..<ends[value]) }
            start = ends[value]
        }
        for range in ranges { sortByChunk(UnsafeMutableBufferPointer(rebasing: pairs[range]), shift: shift - 8, counts: counts) }
    }

    /// Key bytes `depth..<depth+8` as a big-endian integer, zero-padded.
    @inline(__always)
    private func chunk8(_ ref: UInt64, _ depth: Int, keyLength: Int) -> UInt64 {
        let base = entryBase(ref) + 8
        if depth + 8 <= keyLength { return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: depth, as: UInt64.self)) }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(depth + i < keyLength ? base.load(fromByteOffset: depth + i, as: UInt8.self) : 0) }
        return value
    }

    // MARK: Reading

    /// The newest entry of `key`: nil when the memtable has none.
    func lookup(_ key: UnsafeRawBufferPointer) -> UInt64? { lookup(key, hash: KeyHash.of(key)) }

    /// Asks for the cache lines a lookup of `hash` reads first, without waiting for them
    /// (`KVStore.withValues`).
    func prefetchSlot(hash: UInt64) {
        if pendingCount > 0 { indexPending() }
        let slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
        backorder_prefetch(slotRefs + slot)
        backorder_prefetch(slotHashes + slot)
    }

    /// The newest entry of `key`, whose `KeyHash` is `hash` (a lookup through several
    /// memtables and files hashes the key once).
    func lookup(_ key: UnsafeRawBufferPointer, hash: UInt64) -> UInt64? {
        // Only the writer's memtable has pending entries (a frozen one never does).
        if pendingCount > 0 { indexPending() }
        let fragment = Self.fragment(hash)
        let mask = capacity - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let ref = slotRefs[slot]
            if ref == 0 { return nil }
            if slotHashes[slot] == fragment, KeyOrder.compare(self.key(ref), key) == 0 { return ref }
            slot = (slot + 1) & mask
        }
    }

    /// How far ahead of a walk in key order entries are asked for (`prefetch`): a flush
    /// does ~100 instructions an entry, time enough for the line to arrive.
    static let prefetchDistance = 12

    /// Asks for an entry's first cache line without waiting for it: a walk in key order
    /// asks for the entry a few steps ahead, so that its miss overlaps the work on the
    /// ones before it.
    @inline(__always)
    func prefetch(_ ref: UInt64) { backorder_prefetch(entryBase(ref)) }

    @inline(__always)
    private func entryBase(_ ref: UInt64) -> UnsafeMutableRawPointer {
        chunks[Int(truncatingIfNeeded: ref >> 32) &- 1] + Int(truncatingIfNeeded: ref & 0xFFFF_FFFF)
    }

    /// The key of an entry.
    @inline(__always)
    func key(_ ref: UInt64) -> UnsafeRawBufferPointer {
        let base = entryBase(ref)
        return UnsafeRawBufferPointer(start: base + 8, count: Int(base.load(as: UInt32.self)))
    }

    /// The value of an entry (empty for a deletion).
    @inline(__always)
    func value(_ ref: UInt64) -> UnsafeRawBufferPointer {
        let base = entryBase(ref)
        let keyCount = Int(base.load(as: UInt32.self))
        let valueCount = Int(base.load(fromByteOffset: 4, as: UInt32.self) & ~Self.deletedFlag)
        return UnsafeRawBufferPointer(start: base + 8 + keyCount, count: valueCount)
    }

    /// The value of an entry, or nil for a deletion (what a point lookup answers).
    @inline(__always)
    func valueOrDeletion(_ ref: UInt64) -> UnsafeRawBufferPointer? { isDeletion(ref) ? nil : value(ref) }

    /// Whether an entry is a deletion.
    @inline(__always)
    func isDeletion(_ ref: UInt64) -> Bool {
        entryBase(ref).load(fromByteOffset: 4, as: UInt32.self) & Self.deletedFlag != 0
    }

    /// The position in `sorted` (the array given) of the first key ≥ `key`.
    func lowerBound(_ key: UnsafeRawBufferPointer, in sorted: [UInt64]) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if KeyOrder.compare(self.key(sorted[mid]), key) < 0 { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
