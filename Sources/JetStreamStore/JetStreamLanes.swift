import EventLog
import EventStore
import Foundation

/// A JetStream stream read in one lane per partition, for consumer groups (so that members
/// share the work, docs/CONSUMERS.md, "On a cluster"): lane p holds the messages of the
/// subjects `bo.<group>.<p>.>`, and its offsets are stream sequences minus one. A lane's
/// offsets therefore have gaps — the other partitions' messages — which members pass over
/// (`offsetsAreDense` is false), and a lane's end is the sequence after its last message.
/// (The views read the whole stream in one lane: `JetStreamSource`.)
public final class JetStreamLanes: EventSource, @unchecked Sendable {
    // @unchecked: `cachedEnds` is touched under `lock`.
    let base: JetStreamSource
    public let partitionCount: Int
    private let lock = NSLock()
    /// Each lane's end, as read when the stream's last sequence was `forLast`.
    private var cachedEnds: (forLast: Int64, ends: [Int64])?

    init(base: JetStreamSource, partitionCount: Int) {
        self.base = base
        self.partitionCount = partitionCount
    }

    public var sourceID: String? { base.sourceID }
    public var offsetsAreDense: Bool { false }

    private func filter(_ partition: Int) -> String { "bo.\(base.group).\(partition).>" }

    /// Each lane's end: one request for the stream's last sequence, and when it moved, one
    /// per lane for that lane's last message (a follower asks every poll).
    public func endOffsets() throws -> [Int64] {
        let last = try base.endOffsets()[0]
        if let cached = lock.withLock({ cachedEnds }), cached.forLast == last { return cached.ends }
        let ends = try (0..<partitionCount).map { partition in
            try base.connection.lastMessage(stream: base.stream, subject: filter(partition)).map { Int64($0.sequence) } ?? 0
        }
        lock.withLock { cachedEnds = (last, ends) }
        return ends
    }

    public func events(partition: Int, from offset: Int64) throws -> EventCursor {
        guard (0..<partitionCount).contains(partition) else {
            throw EventStoreError.invalidArgument("lane \(partition) does not exist; the stream has \(partitionCount) partitions")
        }
        let end = try endOffsets()[partition]
        let batches = ConsumerBatches(source: base, filter: filter(partition), start: offset, knownEnd: end)
        return EventCursor(partition: partition, batches: batches, from: offset)
    }

    public func readEvent(at position: Position) throws -> StoredEvent {
        let event = try base.readEvent(at: Position(partition: 0, offset: position.offset))
        guard event.position.partition == position.partition else {
            throw EventStoreError.invalidArgument("offset \(position.offset) of stream \(base.stream) is in lane \(event.position.partition), not \(position.partition)")
        }
        return event
    }

    public func lane(tenant: String, stream: String) -> Int {
        JetStreamStore.partition(tenant: tenant, stream: stream, partitionCount: partitionCount)
    }

    /// The stream's first sequence recorded after `moment`, for every lane.
    public func offsets(recordedAfter moment: Int64) throws -> [Int64] {
        Array(repeating: try base.offsets(recordedAfter: moment)[0], count: partitionCount)
    }
}

extension JetStreamStore {
    /// The stream read in one lane per partition (consumer groups).
    public var lanes: JetStreamLanes { JetStreamLanes(base: source, partitionCount: partitionCount) }
}
