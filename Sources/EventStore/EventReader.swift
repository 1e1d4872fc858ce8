import EventLog

/// Read-only access to a store's events, without its locks: for queries, projections
/// and audits that run beside a producer. Sees what was acknowledged when it was opened
/// (and, within this process, what was appended since).
public final class EventReader: Sendable {
    /// The log, opened read-only.
    public let log: WriteAheadLog
    /// Where the store that writes the log in this process lets readers in recorded order
    /// stop (`EventStore.recordedOrderReader`); nil: at the acknowledged ends.
    private let recordedOrderEnds: (@Sendable () -> [Int64])?

    /// Wraps an open log.
    public init(log: WriteAheadLog) {
        self.log = log
        recordedOrderEnds = nil
    }

    init(log: WriteAheadLog, recordedOrderEnds: @escaping @Sendable () -> [Int64]) {
        self.log = log
        self.recordedOrderEnds = recordedOrderEnds
    }

    /// Opens the store in `directory` read-only. Fails with a clear error when it holds no
    /// store yet.
    public static func open(at directory: String) async throws -> EventReader {
        var options = LogOptions()
        options.writable = false
        do { return EventReader(log: try await WriteAheadLog.open(at: directory + "/log", options: options)) } catch {
            throw EventStoreError.wrap(error)
        }
    }

    /// Number of partitions.
    public var partitionCount: Int { log.partitionCount }

    /// Catches up with what a writer in another process appended since the open (or the
    /// last refresh), without reopening; returns whether there is more.
    @discardableResult
    public func refresh() throws -> Bool {
        do { return try log.refresh() } catch { throw EventStoreError.wrap(error) }
    }

    /// The offset after the last event of each partition (of a `recordedOrderReader`: the
    /// ends up to which reading in recorded order is final).
    public func endOffsets() throws -> [Int64] {
        // The cut first: every event below it was acknowledged before the log's ends are read.
        let cut = recordedOrderEnds?()
        let ends: [Int64]
        do { ends = try (0..<log.partitionCount).map { try log.endOffset(partition: $0) } } catch { throw EventStoreError.wrap(error) }
        guard let cut else { return ends }
        precondition(cut.count == ends.count, "\(cut.count) recorded-order ends for \(ends.count) partitions")
        return zip(cut, ends).map { min($0, $1) }
    }

    /// The events of a partition from `offset`, batch by batch.
    public func events(partition: Int, from offset: Int64) throws -> EventCursor {
        do { return EventCursor(partition: partition, cursor: try log.cursor(partition: partition, from: offset), from: offset) } catch {
            throw EventStoreError.wrap(error)
        }
    }
}

extension EventReader {
    /// The event at a position.
    public func readEvent(at position: Position) throws -> StoredEvent {
        try Self.event(at: position, in: try batch(holding: position))
    }

    /// The batch that holds the event at `position` (checksummed and decompressed).
    func batch(holding position: Position) throws -> RecordBatch {
        do {
            var cursor = try log.cursor(partition: position.partition, from: position.offset)
            guard let batch = try cursor.next(), batch.baseOffset <= position.offset, position.offset < batch.nextOffset else {
                throw EventStoreError.invalidArgument("no event at \(position)")
            }
            return batch
        } catch {
            throw EventStoreError.wrap(error)
        }
    }

    /// The event at `position` of a batch that holds it.
    static func event(at position: Position, in batch: RecordBatch) throws -> StoredEvent {
        var found: StoredEvent?
        var failure: (any Error)?
        batch.forEach { record in
            guard record.offset == position.offset else { return }
            do { found = try EnvelopeCodec.decode(record, partition: position.partition) } catch { failure = error }
        }
        if let failure { throw EventStoreError.wrap(failure) }
        guard let found else { throw EventStoreError.invalidArgument("no event at \(position)") }
        return found
    }

    /// The partition a stream lives in.
    public func partition(tenant: String, stream: String) -> Int {
        log.partition(forKey: EnvelopeCodec.key(tenant: tenant, stream: stream))
    }
}

extension EventStore {
    /// A reader over this store's log (sees appends made through this store as soon as the
    /// log acknowledges them).
    public var reader: EventReader { EventReader(log: log) }

    /// A reader over this store's log whose ends stop where reading the partitions in
    /// recorded order is final (`RecordedOrderEnds`): an event appended here shows once
    /// every event recorded before it has settled, so a live feed or a paged read never
    /// delivers an event before an earlier one. Queries, which want what was acknowledged
    /// whatever its order, read through `reader`.
    public var recordedOrderReader: EventReader {
        EventReader(log: log) { [index] in index.lock.withLock { index.recordedOrderEnds() } }
    }
}
