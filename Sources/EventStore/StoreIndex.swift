import EventLog
import Foundation
import KVStore

/// An acknowledged event's index entries.
struct IndexedEvent: Sendable {
    let id: ScopedID
    let stream: StreamHash
    let version: Int64
    let offset: Int64
    /// No stored row held the id's short key when the append was checked (false: not
    /// known). Unless another id with that short key was in flight meanwhile, the row can
    /// then be written under the short key without looking (`StoreIndex.apply`).
    var shortKeyWasFree = false
}

/// An id's short key as a table key.
struct ShortIDKey: WordPairKey {
    let value: UInt64
    var words: (UInt64, UInt64) { (value, 0) }
}

/// How many events in flight have one short id key, and whether two ever overlapped.
struct ShortKeyUse {
    var count: Int
    /// Two events with this short key were in flight at once: whichever is applied first
    /// may take it, so each must look before it writes.
    var contested: Bool
}

/// Where an event (stored or in flight) is: partition, offset, stream version.
struct IndexedPosition: Sendable, Equatable {
    let partition: Int
    let offset: Int64
    let version: Int64
}

/// An event submitted to the log and not yet acknowledged: where it goes, and what it is
/// (a resend of its id is compared with it).
///
/// The event is kept as its place in the append call's events, which every event of the
/// call shares (all its batches, in every partition): the in-flight table moves its
/// entries as it grows and as acknowledged ones leave it, and a `NewEvent` held by value
/// (six counted references) made each move six retains and releases — about a sixth of an
/// append's submitting thread in a profile.
struct InFlightEvent: Sendable {
    let position: IndexedPosition
    let submitted: SubmittedEvents
    let index: Int

    var event: NewEvent { submitted.events[index] }
}

/// The events of one append call, shared by their in-flight entries.
final class SubmittedEvents: Sendable {
    let events: [NewEvent]

    init(_ events: [NewEvent]) { self.events = events }
}

/// The store's indexes and append state, under one lock (docs/EVENTS.md, "Indexes").
///
/// - Rows, in one key-value store (`index/`, a `KVStore`): `s` + stream hash → offset and
///   version of the stream's last event; `i` + the short key of an event id scoped by its
///   tenant (`ScopedID.shortKey`) → partition, offset and version, confirmed by the stored
///   event's id; `I` + the whole scoped id for an id whose short key was taken (`IndexRow`).
///   Memory is the store's configuration (memtable, block cache), whatever the log's size;
///   a commit writes only the rows changed since the previous one.
/// - In flight: events submitted to the log but not yet in the rows; they count for checks
///   (a duplicate or a version) and become rows once acknowledged, in offset order per
///   partition (`apply`).
/// - Coverage (`IndexCoverage`): committed with the rows, atomically, so that after a
///   crash at any moment the rows hold exactly what it says; the next open catches up
///   from there by reading the log. Rows that do not match the log are rebuilt.
final class StoreIndex: @unchecked Sendable {
    let lock = NSLock()
    let directory: String
    /// The offset the next submitted record of each partition gets (one writer: us).
    var nextOffset: [Int64]
    var inFlightStreams: [WordPairTable<StreamHash, IndexedPosition>]
    var inFlightIDs = WordPairTable<ScopedID, InFlightEvent>()
    var inFlightShortKeys = WordPairTable<ShortIDKey, ShortKeyUse>()
    /// Per partition, the offset below which every event is in the rows, and the batches
    /// submitted above it, in offset order. Appends settle in any order (a server settles
    /// each on its own task), but rows are written in offset order: a stream's head row is
    /// the last one written, and a commit's coverage must hold exactly its rows.
    private var appliedEnd: [Int64]
    /// Why a partition's rows could not be written (it is failed until the store reopens).
    private var rowsFailure: [EventStoreError?]
    private var unapplied: [[[IndexedEvent]]]
    /// The recorded times in flight and just settled: where readers in recorded order stop.
    private var recordedOrder: RecordedOrderEnds
    /// Per partition, the offset below which the log has acknowledged every batch (ahead of
    /// `appliedEnd` while rows are being written, or when they failed).
    private var acknowledgedEnd: [Int64]
    /// Where the store's writer publishes those ends for readers in other processes (set
    /// once the open recovered; nil in an index opened for a rebuild or a test).
    private var recordedOrderCut: RecordedOrderCut.Publisher?
    var failure: [EventStoreError?]
    /// The recorded time of the newest event submitted (µs since the epoch): every event
    /// gets a later one than all before it, store-wide (AppendPlan.recordedTimes).
    var lastRecordedTime: Int64 = .min
    private var rows: KVStore
    private let kvOptions: KVOptions
    private let storage: any Storage
    /// Why the open found the rows unusable (damaged, of another format); nil when not.
    private var openFailure: String?
    /// The log the rows index (its id and events are recorded in the coverage).
    private let reader: EventReader
    /// Events read to confirm an id row (shared with the store's `readEvent`: a resend's
    /// original is read here first, then by the append that compares it).
    private let recentBatches: RecentBatches
    private var key = [UInt8](repeating: 0, count: IndexRow.keyBytes)
    private var shortKey = [UInt8](repeating: 0, count: IndexRow.shortKeyBytes)
    private var value: [UInt8] = []  // reused: encodeValue keeps its capacity

    /// The key-value store's settings for the index: random keys (hashes and ids) do not
    /// compress; 16 MiB of unflushed rows is about 120,000 events. Leveled, not size-tiered:
    /// tiered compaction cost 8 % less CPU on a 10,000,000-event store, but an append's
    /// deciding thread then probed twice as many runs for each stream, and took 12 % longer
    /// (bench/RESULTS.md, "Size-tiered compaction").
    static func keyValueOptions(memoryBytes: Int) -> KVOptions {
        var options = KVOptions()
        options.memtableBytes = memoryBytes
        options.codec = .none
        options.blockCacheBytes = memoryBytes
        options.targetFileBytes = 8 << 20
        options.level1Bytes = 64 << 20
        return options
    }

    init(directory: String, log: WriteAheadLog, logEnds: [Int64], memoryBytes: Int = 16 << 20, storage: any Storage = PosixStorage(),
         recentBatches: RecentBatches = RecentBatches()) throws {
        self.reader = EventReader(log: log)
        self.recentBatches = recentBatches
        self.directory = directory
        self.nextOffset = logEnds
        self.appliedEnd = logEnds
        self.rowsFailure = Array(repeating: nil, count: logEnds.count)
        self.unapplied = Array(repeating: [], count: logEnds.count)
        self.recordedOrder = RecordedOrderEnds(ends: logEnds)
        self.acknowledgedEnd = logEnds
        self.inFlightStreams = Array(repeating: WordPairTable(), count: logEnds.count)
        self.failure = Array(repeating: nil, count: logEnds.count)
        self.storage = storage
        self.kvOptions = Self.keyValueOptions(memoryBytes: memoryBytes)
        try storage.createDirectory(directory)
        // Hash tables and their COVERAGE file: the index of builds before the key-value store.
        let legacy = try storage.listDirectory(directory).filter { $0.hasSuffix(".table") || $0 == "COVERAGE" }
        if !legacy.isEmpty {
            for name in legacy { try storage.remove(directory + "/" + name) }
            openFailure = "the index was in an earlier format (hash tables)"
        }
        do {
            rows = try KVStore.open(at: directory, options: kvOptions, storage: storage)
            do { try rows.checkFiles() } catch {
                try? rows.close()
                throw error
            }
        } catch let error as KVError {
            guard case .corrupt = error else { throw EventStoreError.wrap(error) }
            openFailure = "the index is damaged (\(error))"
            try Self.removeFiles(in: directory, storage: storage)
            rows = try KVStore.open(at: directory, options: kvOptions, storage: storage)
        }
    }

    private static func removeFiles(in directory: String, storage: any Storage) throws {
        for name in try storage.listDirectory(directory) { try storage.remove(directory + "/" + name) }
    }

    // MARK: Rows

    private func setKey(_ tag: UInt8, _ a: UInt64, _ b: UInt64) {
        key.withUnsafeMutableBytes { IndexRow.writeKey(tag, a, b, into: $0) }
    }

    private func setShortKey(_ tag: UInt8, _ a: UInt64) {
        shortKey.withUnsafeMutableBytes { IndexRow.writeShortKey(tag, a, into: $0) }
    }

    /// The stored row of a stream or whole id (`IndexRow`).
    private func lookup(_ tag: UInt8, _ a: UInt64, _ b: UInt64, fields: Int) throws -> (Int64, Int64, Int64)? {
        setKey(tag, a, b)
        return try lookup(key, fields: fields)
    }

    /// The stored row under `key`.
    private func lookup(_ key: [UInt8], fields: Int) throws -> (Int64, Int64, Int64)? {
        do {
            return try key.withUnsafeBytes { k in
                try rows.withValue(k) { found -> (Int64, Int64, Int64)? in try found.map { try Self.fields(of: $0, count: fields) } }
            }
        } catch {
            throw EventStoreError.wrap(error)
        }
    }

    /// A stored row's fields; a row that does not decode is damage.
    private static func fields(of row: UnsafeRawBufferPointer, count: Int) throws -> (Int64, Int64, Int64) {
        guard let fields = IndexRow.fields(row, count: count) else {
            throw EventStoreError.indexDamaged("an index row of \(row.count) bytes does not hold \(count) varints")
        }
        return fields
    }

    /// Where an id row says its event is.
    private static func idPosition(_ row: (Int64, Int64, Int64)) -> IndexedPosition {
        IndexedPosition(partition: Int(row.0), offset: row.1, version: row.2)
    }

    /// The head a stream row of `partition` holds.
    private static func headPosition(_ row: (Int64, Int64, Int64), partition: Int) -> IndexedPosition {
        IndexedPosition(partition: partition, offset: row.0, version: row.1)
    }

    private func store(_ tag: UInt8, _ a: UInt64, _ b: UInt64, _ f0: Int64, _ f1: Int64, _ f2: Int64? = nil) throws {
        setKey(tag, a, b)
        try store(key, f0, f1, f2)
    }

    private func store(_ key: [UInt8], _ f0: Int64, _ f1: Int64, _ f2: Int64?) throws {
        IndexRow.encodeValue(f0, f1, f2, into: &value)
        do {
            try key.withUnsafeBytes { k in
                try value.withUnsafeBytes { v in try rows.put(k, v) }
            }
        } catch {
            throw EventStoreError.wrap(error)
        }
    }

    // MARK: Lookups (caller holds the lock)

    /// The head of a stream: its version and the offset of its last event (in flight or
    /// acknowledged).
    func head(of stream: StreamHash, partition: Int) throws -> IndexedPosition? {
        if let inFlight = inFlightStreams[partition][stream] { return inFlight }
        return try storedHead(of: stream, partition: partition)
    }

    /// The head of a stream among acknowledged events only.
    func storedHead(of stream: StreamHash, partition: Int) throws -> IndexedPosition? {
        try lookup(IndexRow.streamTag, stream.k0, stream.k1, fields: IndexRow.streamFields).map { Self.headPosition($0, partition: partition) }
    }

    /// Where an event id is stored or in flight.
    func existing(_ id: ScopedID) throws -> IndexedPosition? {
        if let inFlight = inFlightIDs[id] { return inFlight.position }
        return try stored(id)
    }

    /// Where an event id is stored (acknowledged events only).
    func stored(_ id: ScopedID) throws -> IndexedPosition? {
        setShortKey(IndexRow.idTag, id.shortKey)
        guard let row = try lookup(shortKey, fields: IndexRow.idFields) else { return nil }
        return try confirmed(id, underShortKey: Self.idPosition(row))
    }

    /// Where `id` is stored, given the row under its short key: that row when its event
    /// has this id, else the row under the whole id (an earlier id took the short key).
    /// No row under the short key means no row under the whole id either: rows are never
    /// removed, and an `I` row is written only while its `i` row exists.
    private func confirmed(_ id: ScopedID, underShortKey row: IndexedPosition) throws -> IndexedPosition? {
        if try holds(id, row) { return row }
        guard let whole = try lookup(IndexRow.fullIDTag, id.high, id.low, fields: IndexRow.idFields).map(Self.idPosition) else { return nil }
        guard try holds(id, whole) else {
            throw EventStoreError.indexDamaged("the row of event id \(id.high)/\(id.low) under its whole id points at \(whole.partition):\(whole.offset), an event of another id")
        }
        return whole
    }

    /// Whether the event an id row points at has scoped id `id` (and then the row's
    /// version). Rows hold applied events only: a row pointing anywhere else is damage.
    private func holds(_ id: ScopedID, _ row: IndexedPosition) throws -> Bool {
        let position = Position(partition: row.partition, offset: row.offset)
        guard row.partition < appliedEnd.count, row.offset < appliedEnd[row.partition] else {
            let end = row.partition < appliedEnd.count ? "partition \(row.partition)'s indexed end \(appliedEnd[row.partition])" : "the \(appliedEnd.count) partitions"
            throw EventStoreError.indexDamaged("an id row points at \(position), past \(end)")
        }
        let event = try recentBatches.event(at: position, read: reader.batch(holding:))
        guard ScopedID(tenant: event.tenant, id: event.id) == id else { return false }
        guard event.streamVersion == row.version else {
            throw EventStoreError.indexDamaged("the id row of event \(event.id) says stream version \(row.version); the event at \(position) has \(event.streamVersion)")
        }
        return true
    }

    /// What `existing(_:)` answers for each id and `head(of:partition:)` for each stream
    /// (`partitions[j]` is stream j's), with their rows looked up together: many lookups of
    /// keys the index does not hold cost far less together (`KVStore.withValues`).
    /// `shortKeyFree[k]`: no stored row holds id k's short key.
    func current(ids: [ScopedID], streams: [StreamHash], partitions: [Int]) throws
        -> (ids: [IndexedPosition?], heads: [IndexedPosition?], shortKeyFree: [Bool]) {
        precondition(streams.count == partitions.count, "one partition per stream")
        var idKeys: [UInt8] = [], streamKeys: [UInt8] = []
        idKeys.reserveCapacity(ids.count * IndexRow.shortKeyBytes)
        streamKeys.reserveCapacity(streams.count * IndexRow.keyBytes)
        for id in ids { IndexRow.appendShortKey(IndexRow.idTag, id.shortKey, to: &idKeys) }
        for stream in streams { IndexRow.appendKey(IndexRow.streamTag, stream.k0, stream.k1, to: &streamKeys) }
        var positions = ids.map { inFlightIDs[$0]?.position }
        var heads = streams.indices.map { inFlightStreams[partitions[$0]][streams[$0]] }
        // Rows under the short keys of ids not in flight, confirmed once the lookups are done.
        var underShortKey: [(Int, IndexedPosition)] = []
        var shortKeyFree = [Bool](repeating: true, count: ids.count)
        do {
            try idKeys.withUnsafeBytes { packed in
                try rows.withValues(packedKeys: packed, keyLength: IndexRow.shortKeyBytes) { i, found in
                    guard let found else { return }
                    shortKeyFree[i] = false
                    guard positions[i] == nil else { return }
                    underShortKey.append((i, Self.idPosition(try Self.fields(of: found, count: IndexRow.idFields))))
                }
            }
            try streamKeys.withUnsafeBytes { packed in
                try rows.withValues(packedKeys: packed, keyLength: IndexRow.keyBytes) { j, found in
                    guard let found, heads[j] == nil else { return }
                    heads[j] = Self.headPosition(try Self.fields(of: found, count: IndexRow.streamFields), partition: partitions[j])
                }
            }
            for (i, row) in underShortKey { positions[i] = try confirmed(ids[i], underShortKey: row) }
        } catch {
            throw EventStoreError.wrap(error)
        }
        return (positions, heads, shortKeyFree)
    }

    // MARK: Updates (caller holds the lock)

    /// `contents` holds the append's events, `events[k]`'s at `places[k]`: shared by the
    /// entries of every batch of the append (no copy of an event per entry).
    func markInFlight(_ events: [IndexedEvent], contents submitted: SubmittedEvents, places: ArraySlice<Int>, recordedTimes: [Int64], partition: Int) {
        precondition(events.count == places.count && events.count == recordedTimes.count,
                     "\(events.count) indexed events for \(places.count) submitted with \(recordedTimes.count) recorded times")
        precondition(events.first?.offset == unapplied[partition].last.map { $0[$0.count - 1].offset + 1 } ?? appliedEnd[partition],
                     "partition \(partition): a batch submitted out of offset order")
        unapplied[partition].append(events)
        if let first = events.first { recordedOrder.submitted(partition: partition, base: first.offset, times: recordedTimes) }
        for (k, place) in zip(events.indices, places) {
            let event = events[k]
            let position = IndexedPosition(partition: partition, offset: event.offset, version: event.version)
            inFlightIDs[event.id] = InFlightEvent(position: position, submitted: submitted, index: place)
            let short = ShortIDKey(value: event.id.shortKey)
            if var use = inFlightShortKeys[short] {
                use.count += 1
                use.contested = true
                inFlightShortKeys[short] = use
            } else {
                inFlightShortKeys[short] = ShortKeyUse(count: 1, contested: false)
            }
            inFlightStreams[partition][event.stream] = position
        }
    }

    /// Moves an acknowledged batch of `partition` from in flight into the rows, after
    /// every earlier batch of the partition: the log acknowledges a partition's batches in
    /// order and fails every batch after a failed one, so those are acknowledged too, and
    /// their own settling finds them applied (as does a batch settled twice). Written in
    /// the order appends settled, a stream's head row went back to an older event.
    /// Commits the rows when the unflushed ones reach the configured memory.
    func apply(_ events: [IndexedEvent], partition: Int) throws {
        guard let last = events.last else { return }
        // Acknowledged, so readable in recorded order whatever becomes of the rows
        // (RecordedOrderEnds): the cut moves now, not after them.
        acknowledgedEnd[partition] = max(acknowledgedEnd[partition], last.offset + 1)
        publishRecordedOrder()
        guard last.offset >= appliedEnd[partition] else { return }
        // A batch whose rows failed half-way (a read of the rows failed) is not written
        // again: its events already written have left the in-flight tables. The partition
        // stays failed until the store is reopened, whose recovery rewrites rows from the log.
        if let failure = rowsFailure[partition] { throw failure }
        while appliedEnd[partition] <= last.offset {
            guard let next = unapplied[partition].first, let end = next.last else {
                preconditionFailure("partition \(partition): offset \(last.offset) acknowledged but not submitted")
            }
            precondition(next[0].offset == appliedEnd[partition], "partition \(partition): the next batch to apply starts at \(next[0].offset), not \(appliedEnd[partition])")
            do { try applyInOrder(next, partition: partition) } catch {
                let failure = EventStoreError.wrap(error)
                rowsFailure[partition] = failure
                if self.failure[partition] == nil { self.failure[partition] = failure }
                throw failure
            }
            unapplied[partition].removeFirst()
            appliedEnd[partition] = end.offset + 1
        }
        if rows.needsFreeze { try commit() }
    }

    /// Stops a batch whose log write failed from holding readers in recorded order back
    /// (`RecordedOrderEnds.abandon`), and publishes the ends that this may move.
    func abandonInRecordedOrder(_ events: [IndexedEvent], partition: Int) {
        guard let first = events.first else { return }
        recordedOrder.abandon(partition: partition, base: first.offset)
        publishRecordedOrder()
    }

    /// Where each partition can be read to in recorded order (`RecordedOrderEnds`).
    func recordedOrderEnds() -> [Int64] {
        recordedOrder.ends(acknowledged: acknowledgedEnd, lastRecordedTime: lastRecordedTime)
    }

    /// Starts publishing the recorded-order ends in the store's `recorded-order` file
    /// (`RecordedOrderCut`): now, before any append, and after every settle that moves them.
    func startPublishingRecordedOrder(storeDirectory: String) throws {
        precondition(recordedOrderCut == nil, "the recorded-order cut is published once")
        precondition(unapplied.allSatisfy(\.isEmpty), "the recorded-order cut starts before any append")
        recordedOrderCut = try RecordedOrderCut.Publisher(directory: storeDirectory, ends: recordedOrderEnds(), storage: storage)
    }

    /// Lets go of the recorded times now below the watermark, read or not, and writes the
    /// recorded-order ends to the `recorded-order` file when they moved (when the store
    /// publishes one). A write that fails fails nothing else — the events are acknowledged,
    /// and readers in other processes keep the last cut: behind, never wrong — and the next
    /// settle writes again.
    private func publishRecordedOrder() {
        let ends = recordedOrderEnds()
        try? recordedOrderCut?.publish(ends)
    }

    /// Whether every batch submitted below `offsets` (per partition) is in the rows, or its
    /// partition failed (then it may never be).
    func hasSettled(through offsets: [Int64]) -> Bool {
        offsets.indices.allSatisfy { appliedEnd[$0] >= offsets[$0] || failure[$0] != nil }
    }

    /// `apply` for the next batch of `partition`.
    private func applyInOrder(_ events: [IndexedEvent], partition: Int) throws {
        for event in events {
            let short = ShortIDKey(value: event.id.shortKey)
            guard var use = inFlightShortKeys[short] else { preconditionFailure("partition \(partition): offset \(event.offset) applied but not in flight") }
            // Free when checked, and no other id with this short key in flight since: no
            // row can have taken it (every row written since came from an event in flight).
            try insert(event, partition: partition, shortKeyFree: event.shortKeyWasFree && !use.contested)
            use.count -= 1
            inFlightShortKeys[short] = use.count == 0 ? nil : use
            if inFlightIDs[event.id]?.position.offset == event.offset { inFlightIDs[event.id] = nil }
            if inFlightStreams[partition][event.stream]?.offset == event.offset { inFlightStreams[partition][event.stream] = nil }
        }
    }

    /// Rows for one event. Events of a partition arrive in offset order, and a stream
    /// lives in one partition, so the last row written for a stream is its head.
    /// `shortKeyFree`: no row holds the id's short key (else the rows are asked).
    private func insert(_ event: IndexedEvent, partition: Int, shortKeyFree: Bool) throws {
        precondition(event.offset < nextOffset[partition], "partition \(partition): indexing offset \(event.offset) at or past the next offset \(nextOffset[partition])")
        guard event.version >= 1 else {
            throw EventStoreError.malformedEvent(Position(partition: partition, offset: event.offset), "stream version \(event.version) out of range")
        }
        // The short key, unless an earlier stored id holds it.
        setShortKey(IndexRow.idTag, event.id.shortKey)
        var taken = false
        if !shortKeyFree {
            do { taken = try shortKey.withUnsafeBytes { k in try rows.withValue(k) { $0 != nil } } } catch { throw EventStoreError.wrap(error) }
        }
        if taken {
            try store(IndexRow.fullIDTag, event.id.high, event.id.low, Int64(partition), event.offset, event.version)
        } else {
            try store(shortKey, Int64(partition), event.offset, event.version)
        }
        try store(IndexRow.streamTag, event.stream.k0, event.stream.k1, event.offset, event.version)
    }

    /// Rows for events read back from the log (a rebuild, or the catch-up after a crash),
    /// in offset order. Their short keys are looked up together — one at a time cost a
    /// rebuild of 10,000,000 events 12 CPU s more —, and one that a stored row or an
    /// earlier event of the group holds makes `insert` look again.
    private func insertRecovered(_ events: [IndexedEvent], partition: Int) throws {
        var keys: [UInt8] = []
        keys.reserveCapacity(events.count * IndexRow.shortKeyBytes)
        for event in events { IndexRow.appendShortKey(IndexRow.idTag, event.id.shortKey, to: &keys) }
        var taken = [Bool](repeating: false, count: events.count)
        do {
            try keys.withUnsafeBytes { packed in
                try rows.withValues(packedKeys: packed, keyLength: IndexRow.shortKeyBytes) { k, found in taken[k] = found != nil }
            }
        } catch {
            throw EventStoreError.wrap(error)
        }
        var inGroup = WordPairTable<ShortIDKey, Bool>(capacity: events.count)
        for (k, event) in events.enumerated() {
            let short = ShortIDKey(value: event.id.shortKey)
            try insert(event, partition: partition, shortKeyFree: !taken[k] && inGroup[short] == nil)
            inGroup[short] = true
        }
    }

    // MARK: Coverage and recovery

    /// Brings the rows up to the log: from their committed coverage when it matches this
    /// log, else from nothing. Returns why the rows were rebuilt, or nil when they were
    /// trusted (or the store is new).
    @discardableResult
    func recover(from log: WriteAheadLog) throws -> String? {
        let ends = nextOffset
        var covered = Array(repeating: Int64(0), count: ends.count)
        var rebuilt = openFailure
        let metadata = rows.snapshot().metadata
        let logID = log.manifest.logID ?? "-"
        if rebuilt == nil, let coverage = IndexCoverage(decoding: metadata), coverage.covered.count == ends.count,
           coverage.logID == logID, zip(coverage.covered, ends).allSatisfy({ $0 <= $1 }),
           coverage.lastIDs == lastIDs(before: coverage.covered) {
            covered = coverage.covered
        } else {
            if rebuilt == nil { rebuilt = Self.whyNotUsable(metadata, logEnds: ends, logID: logID) }
            if !metadata.isEmpty || rows.diskBytes > 0 {
                try rows.close()
                try Self.removeFiles(in: directory, storage: storage)
                rows = try KVStore.open(at: directory, options: kvOptions, storage: storage)
            }
        }
        for partition in ends.indices where covered[partition] < ends[partition] {
            var cursor = try log.cursor(partition: partition, from: covered[partition])
            while let batch = try cursor.next() {
                var malformed: Int64?
                var events: [IndexedEvent] = []
                batch.forEach { record in
                    guard record.offset >= covered[partition], malformed == nil else { return }
                    guard let fields = EnvelopeCodec.indexFields(record) else {
                        malformed = record.offset
                        return
                    }
                    events.append(IndexedEvent(id: fields.id, stream: fields.stream, version: fields.version, offset: record.offset))
                }
                if let malformed { throw EventStoreError.malformedEvent(Position(partition: partition, offset: malformed), "unreadable envelope") }
                try insertRecovered(events, partition: partition)
                covered[partition] = max(covered[partition], batch.nextOffset)
                if rows.needsFreeze { try rows.freeze(metadata: coverage(covered).encoded) }
            }
        }
        try commit()
        return rebuilt
    }

    /// Why rows with committed `metadata` cannot be used on a log with these ends and id
    /// (nil for a new store: no metadata and an empty log).
    private static func whyNotUsable(_ metadata: [UInt8], logEnds ends: [Int64], logID: String) -> String? {
        if metadata.isEmpty { return ends.allSatisfy { $0 == 0 } ? nil : "the index is missing" }
        if let earlier = IndexCoverage.earlierFormat(metadata) { return "the index was in an earlier format (\(earlier))" }
        guard let coverage = IndexCoverage(decoding: metadata) else { return "the index's coverage is unreadable" }
        if coverage.covered.count != ends.count { return "the index is for another partition count" }
        if coverage.logID != logID { return "the index belongs to another log" }
        return "the index does not match this log's history"
    }

    /// The coverage of `positions` on this log.
    private func coverage(_ positions: [Int64]) -> IndexCoverage {
        IndexCoverage(covered: positions, logID: reader.log.manifest.logID ?? "-", lastIDs: lastIDs(before: positions))
    }

    /// The ids of the events just below `positions` ("-" where a partition is empty there).
    private func lastIDs(before positions: [Int64]) -> [String] {
        positions.enumerated().map { partition, position in
            guard position > 0, let event = try? reader.readEvent(at: Position(partition: partition, offset: position - 1)) else { return "-" }
            return event.id.description
        }
    }

    /// Commits the rows with their coverage: per partition, below the first event still in
    /// flight (its acknowledgement, and those after it, may yet fail), else the next offset.
    func commit() throws {
        var positions = nextOffset
        for inFlight in inFlightIDs.values {
            let position = inFlight.position
            positions[position.partition] = min(positions[position.partition], position.offset)
        }
        do { try rows.freeze(metadata: coverage(positions).encoded) } catch { throw EventStoreError.wrap(error) }
    }

    /// Commits, then closes the key-value store (it writes what is frozen).
    func close() throws {
        defer { try? rows.close() }
        recordedOrderCut?.close()
        recordedOrderCut = nil
        try commit()
        do { try rows.close() } catch { throw EventStoreError.wrap(error) }
    }

    /// Bytes of the index's files.
    var diskBytes: Int64 { rows.diskBytes }
}
