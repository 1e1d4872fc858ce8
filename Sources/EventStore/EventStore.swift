import EventLog
import Foundation

/// How an event store is opened.
public struct StoreOptions: Sendable {
    /// Options of the underlying log (partitions, codec, durability, segment size…). A new
    /// store's batches are zstd-compressed: zstd level 1 stores generated events in 0.88 of
    /// lz4's bytes in batches of 125 events, 0.82 in batches of 1,250 (what `append` makes),
    /// for ~0.3 µs more CPU per event (bench/RESULTS.md).
    public var log: LogOptions = {
        var options = LogOptions()
        options.codec = .zstd
        return options
    }()
    /// Events in one log batch at most: a larger append is split, each part atomic.
    public var maxEventsPerBatch = 10_000
    /// Memory for the index's unflushed rows, and as much again for its block cache
    /// (16 MiB holds about 120,000 events' rows between commits).
    public var indexMemoryBytes = 16 << 20

    /// The defaults.
    public init() {}
}

/// What happened to one event of an append.
public enum AppendOutcome: Sendable, Equatable {
    /// Stored at `position` as version `version` of its stream.
    case appended(Position, version: Int64)
    /// Its id was stored before, at `position` as `version`; nothing was written.
    case duplicate(Position, version: Int64)

    /// The event's position, new or original.
    public var position: Position {
        switch self {
        case let .appended(p, _), let .duplicate(p, _): p
        }
    }
}

/// Streams of events on top of the write-ahead log (docs/EVENTS.md).
///
/// A stream is identified by tenant and stream id and lives in one partition (chosen by
/// hashing both), so its events are totally ordered. Each event carries its stream
/// version (1, 2, 3 …) and the offset of the stream's previous event, so a stream is read
/// by following those links from the head that the stream index holds — never by
/// scanning a partition. Event ids make appends idempotent: a stored id is acknowledged
/// as a duplicate with its original position, across restarts.
public final class EventStore: Sendable {
    /// The log the events are stored in.
    public let log: WriteAheadLog
    /// The store's directory (`log/` and `index/` are inside).
    public let directory: String
    let index: StoreIndex
    let options: StoreOptions
    /// The store-wide writer lock (`LOCK` in the directory), held from open until the
    /// indexes are checkpointed at close: the log's own locks are released before that,
    /// and the next writer must not open the index files while this one still writes them.
    private let writerLock: any StorageLock
    /// Batches kept for reads of single events (`readEvent`, and the index confirming ids).
    private let recentBatches: RecentBatches

    private init(log: WriteAheadLog, directory: String, index: StoreIndex, options: StoreOptions, writerLock: any StorageLock,
                 recentBatches: RecentBatches, indexRebuildReason: String?) {
        self.indexRebuildReason = indexRebuildReason
        self.recentBatches = recentBatches
        self.log = log
        self.directory = directory
        self.index = index
        self.options = options
        self.writerLock = writerLock
    }

    /// Takes the store-wide writer lock, waiting up to the log's lock timeout for another
    /// writer (process) to finish.
    private static func acquireWriterLock(directory: String, timeoutMilliseconds: Int, storage: any Storage) async throws -> any StorageLock {
        try storage.createDirectory(directory)
        let deadline = ContinuousClock.now + .milliseconds(max(0, timeoutMilliseconds))
        while true {
            do {
                return try storage.lock(directory + "/LOCK")
            } catch LogError.locked(let path) {
                guard ContinuousClock.now < deadline else { throw EventStoreError.log(.locked(path: path)) }
                try? await Task.sleep(for: .milliseconds(5))
            } catch {
                throw EventStoreError.wrap(error)
            }
        }
    }

    /// Opens (or creates) the store in `directory`, taking the log's writer locks, and
    /// brings the indexes up to date with the log. Every file of the store — lock, log,
    /// index — goes through `storage` (a fault simulator in tests).
    public static func open(at directory: String, options: StoreOptions = StoreOptions(), storage: any Storage = PosixStorage()) async throws -> EventStore {
        guard (1...Limits.maxRecordsPerBatch).contains(options.maxEventsPerBatch) else {
            throw EventStoreError.invalidArgument("maxEventsPerBatch must be 1...\(Limits.maxRecordsPerBatch)")
        }
        var logOptions = options.log
        logOptions.writable = true
        let writerLock = try await acquireWriterLock(directory: directory, timeoutMilliseconds: logOptions.lockTimeoutMilliseconds, storage: storage)
        let log: WriteAheadLog
        do { log = try await WriteAheadLog.open(at: directory + "/log", options: logOptions, storage: storage) } catch {
            writerLock.release()
            throw EventStoreError.wrap(error)
        }
        do {
            let ends = try (0..<log.partitionCount).map { try log.endOffset(partition: $0) }
            let recentBatches = RecentBatches()
            let index = try StoreIndex(directory: directory + "/index", log: log, logEnds: ends, memoryBytes: options.indexMemoryBytes, storage: storage,
                                       recentBatches: recentBatches)
            let rebuilt = try index.lock.withLock { try index.recover(from: log) }
            // The recorded-time clock goes on from the newest event (AppendPlan).
            let reader = EventReader(log: log)
            for (partition, end) in ends.enumerated() where end > 0 {
                let newest = try reader.readEvent(at: Position(partition: partition, offset: end - 1)).recordedTime
                index.lastRecordedTime = max(index.lastRecordedTime, newest)
            }
            try index.lock.withLock { try index.startPublishingRecordedOrder(storeDirectory: directory) }
            return EventStore(log: log, directory: directory, index: index, options: options, writerLock: writerLock,
                              recentBatches: recentBatches, indexRebuildReason: rebuilt)
        } catch {
            try? await log.close()  // the open failed: its error is the one to report
            writerLock.release()
            throw EventStoreError.wrap(error)
        }
    }

    /// Why the open rebuilt the indexes from the log (damaged, missing or foreign index
    /// files), or nil when it trusted them. For the operator: `backorder append` prints it.
    public let indexRebuildReason: String?

    /// Number of partitions.
    public var partitionCount: Int { log.partitionCount }

    /// The wall clock in microseconds since the Unix epoch: recorded times, and the
    /// default business time of an event that has none.
    public static func wallClockMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    /// The partition a stream lives in.
    public func partition(tenant: String, stream: String) -> Int {
        log.partition(forKey: EnvelopeCodec.key(tenant: tenant, stream: stream))
    }

    /// Appends events. Every event is checked first — duplicate ids, expected versions —
    /// and if any check fails nothing is written. Events of one partition go in batches of
    /// up to `maxEventsPerBatch`, each atomic; the outcomes are in input order.
    public func append(_ events: [NewEvent]) async throws -> [AppendOutcome] {
        try await submit(events).acknowledged()
    }

    /// Checks and queues events like `append`, returning once they are submitted to the
    /// log; await `acknowledged()` on the result for their outcomes. Appends submitted
    /// one after another are applied in that order.
    public func submit(_ events: [NewEvent]) async throws -> SubmittedAppend {
        guard !events.isEmpty else { return SubmittedAppend(index: index, submissions: [], outcomes: []) }
        let plan = try AppendPlan(events: events, store: self)
        do {
            for partition in plan.partitionNumbers { try await log.waitForQueueSpace(partition: partition) }
        } catch {
            throw EventStoreError.wrap(error)
        }
        return try plan.checkAndSubmit()
    }

    /// Where tenant `tenant`'s event id is stored (or in flight), and its stream version;
    /// nil when new.
    public func storedPosition(of id: EventID, tenant: String) throws -> StoredID? {
        let scoped = ScopedID(tenant: tenant, id: id)
        return try index.lock.withLock {
            try index.existing(scoped).map { StoredID($0, isSettled: index.inFlightIDs[scoped] == nil) }
        }
    }

    /// `storedPosition` of each id and `version` of each stream, looked up together: far
    /// fewer cache misses than one at a time (`StoreIndex.current`).
    public func lookUp(ids: [(tenant: String, id: EventID)], streams: [(tenant: String, stream: String)]) throws -> (positions: [StoredID?], versions: [Int64?]) {
        let scoped = ids.map { ScopedID(tenant: $0.tenant, id: $0.id) }
        var hashes: [StreamHash] = [], partitions: [Int] = []
        hashes.reserveCapacity(streams.count)
        partitions.reserveCapacity(streams.count)
        for stream in streams {
            let key = EnvelopeCodec.key(tenant: stream.tenant, stream: stream.stream)
            hashes.append(StreamHash(key: key))
            partitions.append(log.partition(forKey: key))
        }
        let (found, positions) = try index.lock.withLock {
            let found = try index.current(ids: scoped, streams: hashes, partitions: partitions)
            return (found, found.ids.indices.map { k in found.ids[k].map { StoredID($0, isSettled: index.inFlightIDs[scoped[k]] == nil) } })
        }
        return (positions, found.heads.map { $0?.version ?? 0 })
    }

    /// The current version of a stream (0 when it does not exist).
    public func version(tenant: String, stream: String) throws -> Int64 {
        let partition = self.partition(tenant: tenant, stream: stream)
        return try index.lock.withLock { try index.head(of: StreamHash(tenant: tenant, stream: stream), partition: partition)?.version ?? 0 }
    }

    /// Every acknowledged event of a stream, in version order, found through the stream
    /// index and the events' links (no partition scan).
    public func readStream(tenant: String, stream: String) throws -> [StoredEvent] {
        let number = self.partition(tenant: tenant, stream: stream)
        let hash = StreamHash(tenant: tenant, stream: stream)
        // Only acknowledged events: the table, not what is in flight.
        let stored = try index.lock.withLock { try index.storedHead(of: hash, partition: number) }
        guard let stored else { return [] }
        let head = (offset: stored.offset, value: stored.version)
        var events: [StoredEvent] = []
        var next: Int64? = head.offset
        while let offset = next {
            let event = try readEvent(at: Position(partition: number, offset: offset))
            guard event.tenant == tenant && event.stream == stream else {
                throw EventStoreError.malformedEvent(event.position, "the stream index of \(tenant)/\(stream) points at an event of \(event.tenant)/\(event.stream)")
            }
            let expected = events.last.map { $0.streamVersion &- 1 } ?? head.value
            guard event.streamVersion == expected else {
                throw EventStoreError.malformedEvent(event.position, "stream \(tenant)/\(stream) has version \(event.streamVersion) where \(expected) belongs")
            }
            events.append(event)
            next = event.previousOffset
        }
        guard events.last?.streamVersion == 1 else {
            throw EventStoreError.malformedEvent(Position(partition: number, offset: head.offset), "stream \(tenant)/\(stream) does not start at version 1")
        }
        return events.reversed()
    }

    /// The event at a position.
    public func readEvent(at position: Position) throws -> StoredEvent {
        let reader = self.reader
        return try recentBatches.event(at: position, read: reader.batch(holding:))
    }

    /// The events of a partition from `offset`, batch by batch.
    public func events(partition: Int, from offset: Int64) throws -> EventCursor {
        do { return EventCursor(partition: partition, cursor: try log.cursor(partition: partition, from: offset), from: offset) } catch { throw EventStoreError.wrap(error) }
    }

    /// Flushes and closes the log, commits the index, then lets the next writer in. A log
    /// that fails to close (a failed final sync) is thrown, and the index is not committed
    /// past what an earlier commit covered: the next open catches it up from the log.
    public func close() async throws {
        defer { writerLock.release() }
        do { try await log.close() } catch { throw EventStoreError.wrap(error) }
        try index.lock.withLock { try index.close() }
    }
}

/// Where a stored event id is, and its stream version.
public struct StoredID: Sendable, Equatable {
    /// The event's position.
    public let position: Position
    /// Its version in its stream.
    public let version: Int64
    /// False while the event is in flight: submitted by another append and not yet settled,
    /// so it may not be readable yet (`readEvent`). Appending it again is still safe: the
    /// append's own check compares it with the event in flight (a duplicate, or a conflict).
    public let isSettled: Bool

    /// A stored id's place.
    public init(position: Position, version: Int64, isSettled: Bool = true) {
        self.position = position
        self.version = version
        self.isSettled = isSettled
    }

    /// Where the index says an event is.
    init(_ indexed: IndexedPosition, isSettled: Bool) {
        self.init(position: Position(partition: indexed.partition, offset: indexed.offset), version: indexed.version, isSettled: isSettled)
    }
}

/// Reads a partition's events in order, one log batch at a time (or, from another
/// back end, one delivered batch at a time).
public struct EventCursor: Sendable {
    /// The partition read.
    public let partition: Int
    // One of the two is set. (Not an enum: the log cursor is mutated in place, without
    // copying its buffers on every batch.)
    private var logCursor: PartitionCursor?
    private let batches: (any EventBatchSource)?
    /// The offset of the next event to deliver.
    public private(set) var from: Int64

    init(partition: Int, cursor: PartitionCursor, from: Int64) {
        self.partition = partition
        self.logCursor = cursor
        self.batches = nil
        self.from = from
    }

    /// A cursor over another back end's batches, starting at `from`.
    public init(partition: Int, batches: any EventBatchSource, from: Int64) {
        self.partition = partition
        self.logCursor = nil
        self.batches = batches
        self.from = from
    }

    /// The events of the next batch, read in place (see `nextBatch`).
    mutating func nextBatchRaw(_ body: (RawEvent) throws -> Void) throws -> Bool {
        if let batches {
            guard let events = try batches.next() else { return false }
            for event in events { try RawEvent.withRaw(event, body) }
            if let last = events.last { from = last.position.offset + 1 }
            return true
        }
        do {
            guard let batch = try logCursor?.next() else { return false }
            let start = from
            try batch.forEach { record in
                guard record.offset >= start else { return }
                try body(try RawEvent.decode(record, partition: partition))
            }
            from = batch.nextOffset
            return true
        }
    }

    /// The next batch of events (nil at the end; later calls see newer events).
    public mutating func next() throws -> [StoredEvent]? {
        if let batches {
            guard let events = try batches.next() else { return nil }
            if let last = events.last { from = last.position.offset + 1 }
            return events
        }
        do {
            guard let batch = try logCursor?.next() else { return nil }
            var events: [StoredEvent] = []
            events.reserveCapacity(batch.header.recordCount)
            var failure: (any Error)?
            let start = from
            batch.forEach { record in
                guard record.offset >= start, failure == nil else { return }
                do { events.append(try EnvelopeCodec.decode(record, partition: partition)) } catch { failure = error }
            }
            if let failure { throw failure }
            from = batch.nextOffset
            return events
        }
    }
}

/// Batches of events delivered by a back end other than the embedded log (e.g. a
/// JetStream consumer), for `EventCursor`. Offsets must be dense and increasing.
public protocol EventBatchSource: AnyObject, Sendable {
    /// The next batch, in offset order; nil when nothing more is available now.
    func next() throws -> [StoredEvent]?
}
