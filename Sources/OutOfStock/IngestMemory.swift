import EventLog
import EventStore
import Foundation
import KVStore

/// What the ingestor remembers while it validates an input: each touched stream's version
/// and state, and the ids it has accepted (scoped by tenant, each with a fingerprint of
/// its input line, so that a resend of an id can be told from a conflicting reuse). Bounded: past `streamLimit` states or `idLimit`
/// ids in memory, they move to a scratch key-value store (no fsync; removed at the end),
/// and lookups look in memory first, then there. An input of any length then costs the
/// configured memory, not memory in proportion to its streams and events.
///
/// Stream states are kept in two generations of `streamLimit / 2`: when the newer one is
/// full, the older one moves to the scratch store and the newer one becomes the older. A
/// state looked up in the older generation comes back into the newer, so the streams the
/// input is working on (a record's events follow each other closely; customers and
/// products are looked up by every request) stay in memory, and only those it left are
/// written out — once, not at every spill.
final class IngestMemory {
    private var states: [StreamKey: CachedStream] = [:]
    private var olderStates: [StreamKey: CachedStream] = [:]
    private var ids: [ScopedID: Int] = [:]
    private let streamLimit: Int
    private let idLimit: Int
    private let scratchParent: String
    private var scratch: (store: KVStore, path: String)?
    private var key: [UInt8] = []
    /// Entries moved to the scratch store so far (for tests and reports).
    private(set) var spilled = 0

    private let storage: any Storage
    /// The keys written to the scratch store (made with it): most lookups that would miss
    /// there are answered without it.
    private var written: KeyFilter?
    private let filterBytes: Int

    /// `filterBytes`: the size of the filter of keys written to the scratch store.
    init(streamLimit: Int, idLimit: Int, filterBytes: Int = IngestMemory.defaultFilterBytes, scratchParent: String = NSTemporaryDirectory(),
         storage: any Storage = PosixStorage()) {
        precondition(streamLimit >= 1 && idLimit >= 1 && filterBytes >= 64, "ingest memory limits must be positive, the filter at least 64 bytes")
        self.streamLimit = streamLimit
        self.idLimit = idLimit
        self.filterBytes = filterBytes
        self.scratchParent = scratchParent
        self.storage = storage
    }

    /// 16 MiB: 10 bits per key for 13,000,000 keys written out (ids and streams), about
    /// 1 % false positives; past that the rate grows (a false positive costs a lookup).
    static let defaultFilterBytes = 16 << 20

    deinit { discard() }

    /// Forgets everything, and removes the scratch store if one was made.
    /// Returns about how many entries it held: those in memory and those moved to the
    /// scratch store (one moved and set again counts twice).
    @discardableResult
    func discard() -> Int {
        let held = states.count + olderStates.count + ids.count + spilled
        spilled = 0
        states.removeAll()
        olderStates.removeAll()
        ids.removeAll()
        written = nil
        guard let (store, path) = scratch else { return held }
        try? store.close()
        ProcessDirectory.removeTree(path, storage: storage)
        scratch = nil
        return held
    }

    // MARK: Streams

    func state(_ stream: StreamKey) throws -> CachedStream? {
        if let known = states[stream] { return known }
        if let older = olderStates.removeValue(forKey: stream) {
            try setState(older, for: stream)
            return older
        }
        guard let store = scratch?.store else { return nil }
        setStreamKey(stream)
        return try key.withUnsafeBytes { k in
            guard written?.mayContain(k) ?? true else { return nil }
            return try store.withValue(k) { found in try found.map { try Self.decode(Array($0)) } }
        }
    }

    /// The states held in memory (not those moved to the scratch store).
    func statesInMemory() -> [(StreamKey, CachedStream)] {
        var all: [(StreamKey, CachedStream)] = []
        all.reserveCapacity(states.count + olderStates.count)
        for (stream, state) in olderStates { all.append((stream, state)) }
        for (stream, state) in states { all.append((stream, state)) }
        return all
    }

    func setState(_ value: CachedStream, for stream: StreamKey) throws {
        if states.count == Self.smallTable { states.reserveCapacity(generationLimit) }
        states[stream] = value
        if states.count >= generationLimit { try spillStates() }
    }

    // MARK: Ids

    /// The fingerprint of the input accepted with `id`; nil when none was.
    func fingerprint(of id: ScopedID) throws -> Int? {
        if let known = ids[id] { return known }
        guard let store = scratch?.store else { return nil }
        setIDKey(id)
        return try key.withUnsafeBytes { k in
            guard written?.mayContain(k) ?? true else { return nil }
            return try store.withValue(k) { found in
                guard let found else { return nil }
                precondition(found.count == 8, "ingest scratch: id row of \(found.count) bytes")
                return Int(Int64(littleEndian: found.loadUnaligned(as: Int64.self)))
            }
        }
    }

    func insert(_ id: ScopedID, fingerprint: Int) throws {
        // An input that fills a small table goes on to fill the whole limit (and the table
        // is kept across spills): sized once then, not doubled and rehashed five more times.
        if ids.count == Self.smallTable { ids.reserveCapacity(idLimit + 1) }
        ids[id] = fingerprint
        if ids.count > idLimit { try spillIDs() }
    }

    /// Entries a table holds before it is sized for its limit: above any request a server
    /// takes (10,000 lines by default), which would otherwise reserve tens of megabytes
    /// each — 321 MB peak instead of 268 MB under 100 batched requests.
    static let smallTable = 16_384

    // MARK: Spilling

    /// Scratch stores are named `backorder-ingest-state-<pid>-<random>` in `scratchParent`.
    static let scratchPrefix = "backorder-ingest-state-"

    private func store() throws -> KVStore {
        if let store = scratch?.store { return store }
        // A killed ingest's store (hundreds of megabytes on a large input) goes first.
        ProcessDirectory.removeOrphans(in: scratchParent, prefix: Self.scratchPrefix, storage: storage)
        let path = scratchParent + "/" + ProcessDirectory.name(Self.scratchPrefix)
        var options = KVOptions()
        // Written once per key, in no key order (ids are random), never scanned, and read
        // mostly through `written`: size-tiered, each key rewritten about log2(store /
        // memtable) times. On 10,000,000 lines (bench/RESULTS.md) leveled compaction with a
        // trigger of 4 and an 8 MiB memtable wrote 5.7 GB, with a trigger of 12 and 16 MiB
        // 2.5-2.6 GB, tiered 2.2 GB.
        options.memtableBytes = 16 << 20
        options.compactionStyle = .tiered
        options.level0StopTrigger = 36
        options.blockCacheBytes = 8 << 20
        options.codec = .none
        options.sync = false // scratch: never read after a crash
        let store = try KVStore.open(at: path, options: options, storage: storage)
        scratch = (store, path)
        written = KeyFilter(bytes: filterBytes)
        return store
    }

    /// The older generation goes to the scratch store; the newer becomes the older. (A
    /// stream in both has its newer state in the newer generation: the older one's is not
    /// written — it is stale, and lookups find the newer first.)
    private func spillStates() throws {
        if !olderStates.isEmpty {
            let store = try store()
            for (stream, value) in olderStates where states[stream] == nil {
                setStreamKey(stream)
                try Self.encode(value).withUnsafeBytes { try put($0, into: store) }
                spilled += 1
            }
        }
        // The older generation's table, emptied, takes the newer states (no new table).
        olderStates.removeAll(keepingCapacity: true)
        swap(&olderStates, &states)
        states.reserveCapacity(generationLimit)
    }

    /// States in each generation.
    private var generationLimit: Int { max(1, streamLimit / 2) }

    private func spillIDs() throws {
        let store = try store()
        for (id, fingerprint) in ids {
            setIDKey(id)
            try withUnsafeBytes(of: Int64(fingerprint).littleEndian) { try put($0, into: store) }
        }
        spilled += ids.count
        ids.removeAll(keepingCapacity: true)
    }

    /// Writes `value` under `key` (set just before) to the scratch store, noting the key in
    /// `written`.
    private func put(_ value: UnsafeRawBufferPointer, into store: KVStore) throws {
        try key.withUnsafeBytes { k in
            written?.insert(k)
            try store.put(k, value)
        }
        if store.needsFreeze { try store.freeze(metadata: []) }
    }

    private func setStreamKey(_ stream: StreamKey) {
        key.removeAll(keepingCapacity: true)
        key.append(UInt8(ascii: "s"))
        key.append(contentsOf: stream.tenant.utf8)
        key.append(0)
        key.append(contentsOf: stream.stream.utf8)
    }

    private func setIDKey(_ id: ScopedID) {
        key.removeAll(keepingCapacity: true)
        key.append(UInt8(ascii: "i"))
        withUnsafeBytes(of: id.high.littleEndian) { key.append(contentsOf: $0) }
        withUnsafeBytes(of: id.low.littleEndian) { key.append(contentsOf: $0) }
    }

    // MARK: Encoding of a stream's state

    static func encode(_ value: CachedStream) -> [UInt8] {
        var w = BinaryWriter()
        w.int(value.version)
        switch value.state {
        case .none:
            w.int(0)
        case let .record(r):
            w.int(1)
            w.int(Int64(RecordStatus.allCases.firstIndex(of: r.status)!))
            w.int(r.quantity); w.int(r.delivered)
            w.string(r.customerId); w.string(r.productId); w.optionalString(r.size)
        case let .customer(c):
            w.int(2)
            w.string(c.name); w.optionalString(c.region); w.bool(c.removed)
        case let .product(p):
            w.int(3)
            w.string(p.name); w.strings(p.sizes); w.bool(p.removed)
        }
        return w.bytes
    }

    /// Decodes what `encode` wrote; anything else is a broken invariant (the scratch store
    /// is written and read by this process only), not a user's error.
    static func decode(_ bytes: [UInt8]) throws -> CachedStream {
        var r = BinaryReader(bytes: bytes)
        let version = try r.int()
        let state: StreamState
        switch try r.int() {
        case 0: state = .none
        case 1:
            let status = Int(try r.int())
            precondition(RecordStatus.allCases.indices.contains(status), "ingest scratch: record status \(status)")
            state = .record(RecordState(status: RecordStatus.allCases[status], quantity: try r.int(), delivered: try r.int(),
                                        customerId: try r.string(), productId: try r.string(), size: try r.optionalString()))
        case 2: state = .customer(CustomerState(name: try r.string(), region: try r.optionalString(), removed: try r.bool()))
        case 3: state = .product(ProductState(name: try r.string(), sizes: try r.strings(), removed: try r.bool()))
        case let tag: preconditionFailure("ingest scratch: stream state tag \(tag)")
        }
        return CachedStream(version: version, state: state)
    }
}
