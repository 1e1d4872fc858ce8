import EventStore
import Foundation

/// Turns JetStream messages back into stored events.
enum ClusterDecoding {
    /// The event in `message`: tenant, stream and partition from its subject, the rest
    /// from the envelope; its position's offset is the stream sequence minus one.
    static func event(_ message: StreamMessage, group: String) throws -> StoredEvent {
        let position = Position(partition: 0, offset: Int64(message.sequence) - 1)
        guard let place = ClusterSubject.parse(message.subject, group: group) else {
            throw EventStoreError.malformedEvent(position, "message \(message.sequence) has subject \(message.subject), not one of Backorder's")
        }
        let event = try EventEnvelope.decode(tenant: place.tenant, stream: place.stream, value: message.payload,
                                             position: Position(partition: place.partition, offset: position.offset),
                                             recordedTime: message.timestampNanoseconds / 1_000)
        guard event.streamVersion >= 1 else { throw EventStoreError.malformedEvent(event.position, "stream version \(event.streamVersion) is below 1") }
        return event
    }
}

/// A JetStream stream as the projections and queries read it (`EventSource`): one lane,
/// whose offsets are the stream sequences minus one — dense, because Backorder's streams
/// deny deletes and purges. Views checkpoint a JetStream sequence this way and keep their
/// snapshots in local files (docs/CLUSTER.md, "Projections and checkpoints").
public struct JetStreamSource: EventSource {
    let connection: NatsConnection
    let stream: String
    let group: String
    /// The stream's name and creation time: a stream deleted and created again under the
    /// same name is another history.
    public let sourceID: String?

    /// One lane: the whole stream in sequence order.
    public var partitionCount: Int { 1 }

    /// The stream's last sequence (the offset after its last event).
    public func endOffsets() throws -> [Int64] {
        guard let status = try connection.streamStatus(stream) else { throw EventStoreError.invalidArgument("stream \(stream) no longer exists") }
        return [Int64(status.lastSequence)]
    }

    /// The stream's events from offset `offset` (sequence `offset + 1`) on, through an
    /// ordered consumer.
    public func events(partition: Int, from offset: Int64) throws -> EventCursor {
        guard partition == 0 else { throw EventStoreError.invalidArgument("a JetStream stream is read in one lane, not \(partition)") }
        let end = try endOffsets()[0]
        return EventCursor(partition: 0, batches: ConsumerBatches(source: self, start: offset, knownEnd: end), from: offset)
    }

    /// Found by a binary search over the messages' stream timestamps (a few dozen reads).
    /// The stream leader stamps them; after a leader change on another machine a clock
    /// behind the old leader's can make them briefly non-monotonic, and the search then
    /// finds one of the crossings.
    public func offsets(recordedAfter moment: Int64) throws -> [Int64] {
        let end = try endOffsets()[0]
        var low: Int64 = 0, high = end  // the answer is in low...high
        while low < high {
            let middle = low + (high - low) / 2
            if try readEvent(at: Position(partition: 0, offset: middle)).recordedTime > moment { high = middle } else { low = middle + 1 }
        }
        return [low]
    }

    /// Lane 0: the stream has one.
    public func lane(tenant: String, stream: String) -> Int { 0 }

    /// The event at `position.offset` (the lane number is not needed: sequences are unique).
    public func readEvent(at position: Position) throws -> StoredEvent {
        guard position.offset >= 0, let message = try connection.message(stream: stream, sequence: UInt64(position.offset) + 1) else {
            throw EventStoreError.invalidArgument("no event at offset \(position.offset) of stream \(stream)")
        }
        return try ClusterDecoding.event(message, group: group)
    }
}

/// Batches of a JetStream stream, read in sequence order.
final class ConsumerBatches: EventBatchSource, @unchecked Sendable {
    private let source: JetStreamSource
    private let reader: StreamReader
    static let batchSize = 1_000

    /// `filter`: the whole stream by default, or one partition's subjects.
    init(source: JetStreamSource, filter: String? = nil, start: Int64, knownEnd: Int64) {
        self.source = source
        self.reader = StreamReader(connection: source.connection, stream: source.stream, filter: filter ?? ClusterSubject.wildcard(group: source.group),
                                   from: UInt64(start) + 1, until: UInt64(max(0, knownEnd)), headersOnly: false,
                                   retrySeconds: source.connection.retrySeconds)
    }

    /// Up to `batchSize` events: waits (and retries) for events known to exist, polls
    /// briefly for new ones; nil when none came.
    func next() throws -> [StoredEvent]? {
        var events: [StoredEvent] = []
        while events.count < Self.batchSize, let message = try reader.next(waitMilliseconds: events.isEmpty ? 20 : 1) {
            events.append(try ClusterDecoding.event(message, group: source.group))
        }
        return events.isEmpty ? nil : events
    }
}
