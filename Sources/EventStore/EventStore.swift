import EventLog
import Foundation

/// How an event store is opened.
public struct StoreOptions: Sendable {
    /// Options of the underlying log (partitions, codec, durability, segment size…).
    public var log = LogOptions()
    /// Events in one log batch at most: a larger append is split, each part atomic.
    public var maxEventsPerBatch = 10_000

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
    let partitions: [StorePartition]
    let options: StoreOptions

    private init(log: WriteAheadLog, directory: String, partitions: [StorePartition], options: StoreOptions) {
        self.log = log
        self.directory = directory
        self.partitions = partitions
        self.options = options
    }

    /// Opens (or creates) the store in `directory`, taking the log's writer locks, and
    /// brings the indexes up to date with the log.
    public static func open(at directory: String, options: StoreOptions = StoreOptions()) async throws -> EventStore {
        var logOptions = options.log
        logOptions.writable = true
        let log: WriteAheadLog
        do { log = try await WriteAheadLog.open(at: directory + "/log", options: logOptions) } catch { throw EventStoreError.wrap(error) }
        do {
            var partitions: [StorePartition] = []
            for number in 0..<log.partitionCount {
                let indexDirectory = directory + "/index/" + String(format: "partition-%04d", number)
                try FileManager.default.createDirectory(atPath: indexDirectory, withIntermediateDirectories: true)
                let partition = StorePartition(
                    number: number, nextOffset: try log.endOffset(partition: number),
                    streams: try PersistentHashTable(path: indexDirectory + "/streams.table"),
                    ids: try PersistentHashTable(path: indexDirectory + "/event-ids.table"))
                try catchUp(partition, log: log)
                partition.streams.setFsyncOnly(options.log.durability == .fsync)
                partition.ids.setFsyncOnly(options.log.durability == .fsync)
                partitions.append(partition)
            }
            return EventStore(log: log, directory: directory, partitions: partitions, options: options)
        } catch {
            await log.close()
            throw EventStoreError.wrap(error)
        }
    }

    /// Brings a partition's indexes up to the log's end: from their checkpoint when they
    /// can be trusted up to it, else from the start (docs/EVENTS.md, "Index recovery").
    private static func catchUp(_ partition: StorePartition, log: WriteAheadLog) throws {
        let end = partition.nextOffset
        var from = min(partition.ids.header.coveredThrough, partition.streams.header.coveredThrough)
        let trusted = [partition.ids.header, partition.streams.header].allSatisfy { ($0.clean || $0.fsyncOnly) && $0.coveredThrough <= end }
        if !trusted {
            try partition.ids.reset()
            try partition.streams.reset()
            from = 0
        }
        guard from < end else { return }
        var cursor = try log.cursor(partition: partition.number, from: from)
        var indexed: [(id: EventID, stream: StreamHash, version: Int64, offset: Int64)] = []
        while let batch = try cursor.next() {
            indexed.removeAll(keepingCapacity: true)
            var malformed: Int64?
            batch.forEach { record in
                guard record.offset >= from else { return }
                if let fields = EnvelopeCodec.indexFields(record) {
                    indexed.append((fields.id, fields.stream, fields.version, record.offset))
                } else if malformed == nil {
                    malformed = record.offset
                }
            }
            if let malformed { throw EventStoreError.malformedEvent(Position(partition: partition.number, offset: malformed), "unreadable envelope") }
            try partition.apply(indexed)
        }
        try partition.checkpoint(clean: false)
    }

    /// Number of partitions.
    public var partitionCount: Int { partitions.count }

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
        guard !events.isEmpty else { return SubmittedAppend(submissions: [], outcomes: []) }
        let plan = try AppendPlan(events: events, store: self)
        do {
            for partition in plan.partitionNumbers { try await log.waitForQueueSpace(partition: partition) }
        } catch {
            throw EventStoreError.wrap(error)
        }
        return try plan.checkAndSubmit()
    }

    /// Where an event id is stored (or in flight), and its stream version; nil when new.
    public func storedPosition(of id: EventID) -> (position: Position, version: Int64)? {
        for partition in partitions { partition.lock.lock() }
        defer { for partition in partitions.reversed() { partition.lock.unlock() } }
        return lockedLookup(id).map { (Position(partition: $0.0, offset: $0.1.offset), $0.1.version) }
    }

    /// Looks an id up in every partition; the caller holds every partition's lock.
    func lockedLookup(_ id: EventID) -> (Int, StorePartition.InFlight)? {
        for partition in partitions {
            if let found = partition.existing(id) { return (partition.number, found) }
        }
        return nil
    }

    /// The current version of a stream (0 when it does not exist).
    public func version(tenant: String, stream: String) -> Int64 {
        let partition = partitions[self.partition(tenant: tenant, stream: stream)]
        partition.lock.lock()
        defer { partition.lock.unlock() }
        return partition.head(of: StreamHash(tenant: tenant, stream: stream))?.version ?? 0
    }

    /// Every acknowledged event of a stream, in version order, found through the stream
    /// index and the events' links (no partition scan).
    public func readStream(tenant: String, stream: String) throws -> [StoredEvent] {
        let number = self.partition(tenant: tenant, stream: stream)
        let partition = partitions[number]
        partition.lock.lock()
        let head = partition.streams.lookup(StreamHash(tenant: tenant, stream: stream).k0, StreamHash(tenant: tenant, stream: stream).k1)
        partition.lock.unlock()
        guard let head else { return [] }
        var events: [StoredEvent] = []
        var next: Int64? = head.offset
        while let offset = next {
            let event = try readEvent(at: Position(partition: number, offset: offset))
            guard event.tenant == tenant && event.stream == stream else {
                throw EventStoreError.malformedEvent(event.position, "the stream index of \(tenant)/\(stream) points at an event of \(event.tenant)/\(event.stream)")
            }
            guard events.last.map({ event.streamVersion == $0.streamVersion - 1 }) ?? (event.streamVersion == head.value) else {
                throw EventStoreError.malformedEvent(event.position, "stream \(tenant)/\(stream) has version \(event.streamVersion) where \((events.last?.streamVersion ?? head.value + 1) - 1) belongs")
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
        do {
            var cursor = try log.cursor(partition: position.partition, from: position.offset)
            guard let batch = try cursor.next() else { throw EventStoreError.invalidArgument("no event at \(position)") }
            var found: StoredEvent?
            var failure: (any Error)?
            batch.forEach { record in
                guard record.offset == position.offset else { return }
                do { found = try EnvelopeCodec.decode(record, partition: position.partition) } catch { failure = error }
            }
            if let failure { throw failure }
            guard let found else { throw EventStoreError.invalidArgument("no event at \(position)") }
            return found
        } catch {
            throw EventStoreError.wrap(error)
        }
    }

    /// The events of a partition from `offset`, batch by batch.
    public func events(partition: Int, from offset: Int64) throws -> EventCursor {
        do { return EventCursor(partition: partition, cursor: try log.cursor(partition: partition, from: offset), from: offset) } catch { throw EventStoreError.wrap(error) }
    }

    /// Flushes and closes the log and marks the indexes clean.
    public func close() async throws {
        await log.close()
        for partition in partitions {
            try partition.lock.withLock {
                if partition.failure == nil && partition.inFlightIDs.isEmpty { try partition.checkpoint(clean: true) }
            }
        }
    }
}

/// Reads a partition's events in order, one log batch at a time.
public struct EventCursor {
    /// The partition read.
    public let partition: Int
    var cursor: PartitionCursor
    var from: Int64

    /// The next batch of events (nil at the end; later calls see newer events).
    public mutating func next() throws -> [StoredEvent]? {
        guard let batch = try cursor.next() else { return nil }
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
