import EventLog
import Synchronization

/// Read-only access to a store's events, without its locks: for queries, projections
/// and audits that run beside a producer. Sees what was acknowledged when it was opened
/// (and, within this process, what was appended since).
public final class EventReader: Sendable {
    /// The log, opened read-only.
    public let log: WriteAheadLog
    /// Where reading stops short of the acknowledged ends.
    private let limit: Limit

    /// The ends a reader reads to.
    private enum Limit: Sendable {
        /// The log's acknowledged ends.
        case acknowledged
        /// The ends of the store that writes the log in this process, in recorded order
        /// (`EventStore.recordedOrderReader`).
        case writerInProcess(@Sendable () -> [Int64])
        /// The cut a writer in another process published (`RecordedOrderCut`), read before
        /// each refresh of the log.
        case published(PublishedCut)
    }

    /// A published cut as a reader last read it.
    private final class PublishedCut: Sendable {
        let directory: String
        let storage: any Storage
        /// nil: no limit (no writer holds the store).
        let ends: Mutex<[Int64]?>

        init(directory: String, storage: any Storage, partitions: Int) {
            self.directory = directory
            self.storage = storage
            ends = Mutex(Array(repeating: 0, count: partitions))
        }
    }

    /// Wraps an open log.
    public init(log: WriteAheadLog) {
        self.log = log
        limit = .acknowledged
    }

    init(log: WriteAheadLog, recordedOrderEnds: @escaping @Sendable () -> [Int64]) {
        self.log = log
        limit = .writerInProcess(recordedOrderEnds)
    }

    private init(log: WriteAheadLog, publishedBy directory: String, storage: any Storage) {
        self.log = log
        limit = .published(PublishedCut(directory: directory, storage: storage, partitions: log.partitionCount))
    }

    /// Opens the store in `directory` read-only. Fails with a clear error when it holds no
    /// store yet.
    public static func open(at directory: String) async throws -> EventReader {
        EventReader(log: try await openLog(at: directory, storage: PosixStorage()))
    }

    /// Opens the store in `directory` read-only, to be read in recorded order beside a
    /// writer in another process: its ends stop at the cut the writer publishes
    /// (`RecordedOrderCut`), so that reading the partitions merged by recorded time never
    /// meets an event recorded before one it already gave. Without a writer, at the log's
    /// ends. Until a cut is read whole, nothing (a file caught mid-write, read again at the
    /// next refresh). Fails with a clear error when the directory holds no store yet.
    public static func openInRecordedOrder(at directory: String, storage: any Storage = PosixStorage()) async throws -> EventReader {
        let reader = EventReader(log: try await openLog(at: directory, storage: storage), publishedBy: directory, storage: storage)
        try reader.refresh()  // the cut first, then the log: the log as opened may be older than any cut
        return reader
    }

    private static func openLog(at directory: String, storage: any Storage) async throws -> WriteAheadLog {
        var options = LogOptions()
        options.writable = false
        do { return try await WriteAheadLog.open(at: directory + "/log", options: options, storage: storage) } catch {
            throw EventStoreError.wrap(error)
        }
    }

    /// Number of partitions.
    public var partitionCount: Int { log.partitionCount }

    /// Catches up with what a writer in another process appended since the open (or the
    /// last refresh), without reopening; returns whether there is more.
    @discardableResult
    public func refresh() throws -> Bool {
        guard case let .published(cut) = limit else {
            do { return try log.refresh() } catch { throw EventStoreError.wrap(error) }
        }
        // One refresh at a time: each pairs a cut with the view of the log read after it.
        return try cut.ends.withLock { current in
            let before = try Self.limited(logEnds(), by: current)
            var more = false
            for _ in 0..<3 {
                let (reading, view, held) = try readCutThenLog(cut, more: &more)
                guard let reading else { continue }
                switch reading {
                case let .value(ends):
                    guard ends.count == log.partitionCount else {
                        throw EventStoreError.log(.corrupt(path: cut.directory + "/" + RecordedOrderCut.fileName, offset: 8,
                                                           reason: "the recorded-order cut names \(ends.count) partitions; the log has \(log.partitionCount)"))
                    }
                    // A partition whose acknowledged-end file was caught mid-write did not
                    // move: the others read to the cut would pass its earlier events.
                    guard zip(ends, view).allSatisfy({ $0 <= $1 }) else { continue }
                    current = ends
                case .absent:
                    current = nil  // no writer, or one that publishes no cut: all the log holds
                case .unreadable:
                    precondition(held, "an unreadable cut is only looked at while a writer holds the store")
                    // a write caught in progress: the last cut holds until the next refresh
                }
                return more
            }
            // Writers kept opening, or the view kept missing the cut: the ends the reader
            // had hold (the view only grows).
            current = before
            return more
        }
    }

    /// Reads the cut, then refreshes the log; returns the cut (nil when it must be read
    /// again: a writer opened, or came and went, meanwhile), the log's ends after, and
    /// whether a writer held the store at the first look.
    private func readCutThenLog(_ cut: PublishedCut, more: inout Bool) throws -> (RewrittenFile<[Int64]>?, [Int64], Bool) {
        let held = RecordedOrderCut.writerHolds(directory: cut.directory, storage: cut.storage)
        let reading = RecordedOrderCut.read(directory: cut.directory, storage: cut.storage)
        do { more = try log.refresh() || more } catch { throw EventStoreError.wrap(error) }
        let view = try logEnds()
        if held {
            // A writer that has taken the lock but not yet written its first cut (a new
            // store, or the first open after an upgrade) may write it and append meanwhile.
            guard reading != .absent || RecordedOrderCut.read(directory: cut.directory, storage: cut.storage) == .absent else {
                return (nil, view, true)
            }
            return (reading, view, true)
        }
        // No writer at the first look: if one opened since (or opened, appended and left,
        // rewriting the file), the log may hold appends past any cut.
        guard !RecordedOrderCut.writerHolds(directory: cut.directory, storage: cut.storage),
              RecordedOrderCut.read(directory: cut.directory, storage: cut.storage) == reading else { return (nil, view, false) }
        return (.absent, view, false)
    }

    /// The log's ends as this reader's view of it has them.
    private func logEnds() throws -> [Int64] {
        do { return try (0..<log.partitionCount).map { try log.endOffset(partition: $0) } } catch { throw EventStoreError.wrap(error) }
    }

    private static func limited(_ ends: [Int64], by cut: [Int64]?) -> [Int64] {
        guard let cut else { return ends }
        precondition(cut.count == ends.count, "\(cut.count) recorded-order ends for \(ends.count) partitions")
        return zip(cut, ends).map { min($0, $1) }
    }

    /// Wakes a follower of this reader when another process writes: the log's partitions,
    /// and for a reader opened `openInRecordedOrder` the store's directory too — the cut
    /// moves after the partitions' acknowledged ends, and a follower woken by those alone
    /// could find the cut not yet moved and sleep its whole poll interval.
    public func makeWatcher() -> LogWatcher {
        guard case let .published(cut) = limit else { return LogWatcher(log: log) }
        return LogWatcher(log: log, alsoWatching: [cut.directory])
    }

    /// The offset after the last event of each partition (of a `recordedOrderReader` or a
    /// reader opened `openInRecordedOrder`: the ends up to which reading in recorded order
    /// is final).
    public func endOffsets() throws -> [Int64] {
        // The cut first: every event below it was acknowledged before the log's ends are read.
        switch limit {
        case .acknowledged:
            return try logEnds()
        case let .writerInProcess(ends):
            let cut = ends()
            return Self.limited(try logEnds(), by: cut)
        case let .published(cut):
            // Under the lock: a refresh meanwhile may move the view before it settles a cut.
            return try cut.ends.withLock { try Self.limited(logEnds(), by: $0) }
        }
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
