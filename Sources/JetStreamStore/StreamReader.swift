import EventStore
import Foundation

/// Reads a JetStream stream's messages in sequence order (the whole stream, or one
/// partition's subjects), through an ordered consumer — and survives the consumer's loss: when the stream stops answering
/// (its leader was killed and a new one is being elected, the connection moved to another
/// node), the consumer is created again from the next sequence, until `retrySeconds` pass.
/// Messages are delivered once each, whatever the consumer repeats.
///
/// The reader waits for messages up to `until`, a sequence the caller knows to exist
/// (from `STREAM.INFO` or the subject's last message); past it, silence means the end.
/// (Not the consumer's pending count: nats-server 2.9 sometimes reports messages pending
/// after the stream's last one, and waiting for those would never end.)
///
/// Not thread-safe: one reader is used by one task at a time (unchecked `Sendable` so that
/// a cursor can move between the tasks of a rebuild, which use it one after another).
final class StreamReader: @unchecked Sendable {
    private let connection: NatsConnection
    private let stream: String
    private let filter: String
    private let headersOnly: Bool
    private let retrySeconds: Double
    private var consumer: OrderedConsumer?
    /// The sequence of the next message to deliver.
    private(set) var nextSequence: UInt64
    /// The last sequence known to hold a message for the filter (0: none known).
    private(set) var until: UInt64

    init(connection: NatsConnection, stream: String, filter: String, from sequence: UInt64, until: UInt64, headersOnly: Bool, retrySeconds: Double) {
        self.until = until
        self.connection = connection
        self.stream = stream
        self.filter = filter
        self.headersOnly = headersOnly
        self.retrySeconds = retrySeconds
        self.nextSequence = max(1, sequence)
        self.subjectPrefix = filter.hasSuffix(">") ? String(filter.dropLast()) : filter
    }

    /// Raises `until` to a sequence since known to exist (a reader that follows the stream).
    func extend(until sequence: UInt64) {
        until = max(until, sequence)
    }

    /// What the subjects of the filter's messages start with (`bo.<group>.` for the whole
    /// stream, `bo.<group>.<p>.` for one partition): read by sequence, the others are
    /// passed over.
    private let subjectPrefix: String

    /// Messages still to read one by one from the stream leader before trying a consumer
    /// again (see `next`).
    private var bySequence = 0

    /// The next message. Up to `until`, silence is a failure of the consumer — on
    /// nats-server 2.9 an ephemeral consumer can be placed on a replica that is behind
    /// (CLUSTER.md, finding 8) and then delivers nothing — so the reader fetches the next
    /// 1,000 messages by sequence from the stream leader (`STREAM.MSG.GET`; sequences are
    /// dense, and those of other partitions are passed over)
    /// and tries a new consumer after them. Transient failures are retried until the
    /// deadline. Past `until`, silence for `waitMilliseconds` returns nil.
    func next(waitMilliseconds: Int64) throws -> StreamMessage? {
        let deadline = Date().addingTimeInterval(retrySeconds)
        while true {
            let expected = nextSequence <= until
            do {
                if expected && bySequence > 0 {
                    bySequence -= 1
                    guard let message = try connection.message(stream: stream, sequence: nextSequence) else {
                        throw EventStoreError.malformedEvent(Position(partition: 0, offset: Int64(nextSequence) - 1),
                                                             "stream \(stream) has no message \(nextSequence), below its last sequence \(until)")
                    }
                    guard message.subject.hasPrefix(subjectPrefix) else {
                        nextSequence = message.sequence + 1  // another partition's: not this reader's
                        continue
                    }
                    return delivered(message)
                }
                if consumer == nil {
                    consumer = try connection.orderedConsumer(stream: stream, filter: filter, startSequence: nextSequence, headersOnly: headersOnly)
                }
                guard let consumer else { return nil }
                if let message = try consumer.next(timeoutMilliseconds: expected ? connection.requestTimeoutMilliseconds : max(1, waitMilliseconds)) {
                    guard message.sequence >= nextSequence else { continue }  // a repeat after a reset
                    return delivered(message)
                }
                guard expected else { return nil }
                self.consumer = nil
                bySequence = 1_000
            } catch let error as NatsError where error.isTransient {
                consumer = nil
                guard Date() < deadline else { throw error }
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }

    private func delivered(_ message: StreamMessage) -> StreamMessage {
        nextSequence = message.sequence + 1
        return message
    }
}
