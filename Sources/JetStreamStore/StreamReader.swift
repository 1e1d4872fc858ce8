import Foundation

/// Reads a JetStream stream's messages that match a filter, in sequence order, through an
/// ordered consumer — and survives the consumer's loss: when the stream stops answering
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
    var until: UInt64
    /// The sequence of the last message delivered.
    private(set) var lastSequence: UInt64?

    init(connection: NatsConnection, stream: String, filter: String, from sequence: UInt64, until: UInt64, headersOnly: Bool, retrySeconds: Double) {
        self.until = until
        self.connection = connection
        self.stream = stream
        self.filter = filter
        self.headersOnly = headersOnly
        self.retrySeconds = retrySeconds
        self.nextSequence = max(1, sequence)
    }

    /// The next message. Up to `until`, silence is a failure of the consumer: it is
    /// recreated and asked again until the deadline, then the call throws. Past `until`,
    /// silence for `waitMilliseconds` returns nil.
    func next(waitMilliseconds: Int64) throws -> StreamMessage? {
        let deadline = Date().addingTimeInterval(retrySeconds)
        while true {
            let expected = nextSequence <= until
            do {
                if consumer == nil {
                    consumer = try connection.orderedConsumer(stream: stream, filter: filter, startSequence: nextSequence, headersOnly: headersOnly)
                }
                guard let consumer else { return nil }
                if let message = try consumer.next(timeoutMilliseconds: expected ? connection.requestTimeoutMilliseconds : max(1, waitMilliseconds)) {
                    guard message.sequence >= nextSequence else { continue }  // a repeat after a reset
                    nextSequence = message.sequence + 1
                    lastSequence = message.sequence
                    return message
                }
                guard expected else { return nil }
                throw NatsError(status: "NATS_TIMEOUT", code: 0, message: "reading \(filter) from sequence \(nextSequence) (messages known up to \(until)): no message within \(connection.requestTimeoutMilliseconds) ms")
            } catch let error as NatsError where error.isTransient {
                consumer = nil
                guard Date() < deadline else { throw error }
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }
}
