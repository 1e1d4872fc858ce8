import EventLog

/// A batch of events of one partition, as a subscription delivers it.
public struct EventBatch: Sendable {
    /// The partition.
    public let partition: Int
    /// The events, in offset order.
    public let events: [StoredEvent]
    /// Where the subscription continues in this partition: save it as a checkpoint.
    public let nextOffset: Int64

    /// A batch (for replays that cut or assemble batches themselves).
    public init(partition: Int, events: [StoredEvent], nextOffset: Int64) {
        self.partition = partition
        self.events = events
        self.nextOffset = nextOffset
    }
}

/// A catch-up subscription: every event from the given positions on, history first,
/// then live, in batches (one log batch at a time, never one element per event). The
/// positions are dense per partition, so the switch from history to live has no gap and
/// no duplicate by construction.
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = EventBatch

    let store: EventStore
    let start: [Int64]
    let pollMilliseconds: Int

    /// An iterator reading the partitions in turn.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let store: EventStore
        let start: [Int64]
        var cursors: [EventCursor] = []
        var nextPartition = 0
        var idlePolls = 0
        let pollMilliseconds: Int

        /// The next batch; waits (polling) when caught up; nil when the task is cancelled.
        public mutating func next() async throws -> EventBatch? {
            if cursors.isEmpty {
                for (partition, offset) in start.enumerated() { cursors.append(try store.events(partition: partition, from: offset)) }
            }
            while !Task.isCancelled {
                for _ in 0..<cursors.count {
                    let partition = nextPartition
                    nextPartition = (nextPartition + 1) % cursors.count
                    if let events = try cursors[partition].next(), !events.isEmpty {
                        idlePolls = 0
                        return EventBatch(partition: partition, events: events, nextOffset: cursors[partition].from)
                    }
                }
                idlePolls += 1
                // Caught up everywhere: back off from 2 ms to the poll interval.
                try? await Task.sleep(for: .milliseconds(Swift.min(pollMilliseconds, 1 << Swift.min(idlePolls, 5))))
            }
            return nil
        }
    }

    /// An iterator from the subscription's start positions.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(store: store, start: start, pollMilliseconds: pollMilliseconds)
    }
}

extension EventStore {
    /// Subscribes from a position per partition (nil: from the beginning). The positions
    /// must be within the log; a view's checkpoint is exactly such a vector.
    public func subscribe(from positions: [Int64]? = nil, pollMilliseconds: Int = 20) throws -> EventSubscription {
        let start = positions ?? Array(repeating: 0, count: partitionCount)
        guard start.count == partitionCount else {
            throw EventStoreError.invalidArgument("a subscription needs one position per partition (\(partitionCount)), got \(start.count)")
        }
        for (partition, offset) in start.enumerated() { _ = try events(partition: partition, from: offset) }
        return EventSubscription(store: self, start: start, pollMilliseconds: pollMilliseconds)
    }
}
