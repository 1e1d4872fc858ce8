import EventStore

/// Walks a Backorder stream backwards on JetStream: from a message, by the envelope's
/// back-link (the previous event's sequence), each message read by sequence from the
/// stream leader. Checks what the embedded store checks when it follows its links: the
/// same tenant and stream, and versions falling by one.
struct ClusterLinks {
    let connection: NatsConnection
    let stream: String
    let group: String

    /// The events from `last` backwards, newest first, as long as `keepGoing` holds (the
    /// first event for which it does not is left out, and the walk stops there).
    func walk(from last: StreamMessage, while keepGoing: (StoredEvent) -> Bool) throws -> [StoredEvent] {
        var events: [StoredEvent] = []
        var message = last
        while true {
            let event = try ClusterDecoding.event(message, group: group)
            if let newer = events.last {
                guard event.tenant == newer.tenant, event.stream == newer.stream else {
                    throw EventStoreError.malformedEvent(newer.position, "the back-link of \(newer.tenant)/\(newer.stream) points at an event of \(event.tenant)/\(event.stream)")
                }
                guard event.streamVersion == newer.streamVersion - 1 else {
                    throw EventStoreError.malformedEvent(event.position, "stream \(event.tenant)/\(event.stream) has version \(event.streamVersion) where \(newer.streamVersion - 1) belongs")
                }
            }
            guard keepGoing(event) else { return events }
            events.append(event)
            guard let previous = event.previousOffset else { return events }
            guard previous >= 0, UInt64(previous) + 1 < message.sequence,
                  let older = try connection.message(stream: stream, sequence: UInt64(previous) + 1) else {
                throw EventStoreError.malformedEvent(event.position, "the back-link of \(event.tenant)/\(event.stream) version \(event.streamVersion) points at no earlier message")
            }
            message = older
        }
    }
}
