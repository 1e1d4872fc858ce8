import EventStore
import OutOfStock

/// A record's current state and its history: what `query record` and the server's
/// `/records/{id}` answer.
public struct RecordDetails: Sendable, Encodable {
    /// One event of the history.
    public struct Entry: Sendable, Encodable {
        public let position: String, type: String, at: String, recordedAt: String, actor: String, version: Int64
    }

    public let record: RecordSummary
    public let history: [Entry]

    /// The record's row and its events, read back from the log through the links from the
    /// row's head.
    public init(_ row: RecordRow, tenant: String, source: any EventSource) throws {
        record = RecordSummary(row)
        history = try streamHistory(source, tenant: tenant, stream: StreamName.record(row.id), head: row.head).map { e in
            Entry(position: e.position.description, type: e.type, at: Timestamp.format(e.businessTime),
                  recordedAt: Timestamp.format(e.recordedTime), actor: e.actor, version: e.streamVersion)
        }
    }
}

/// A stream's events, oldest first, read back from its newest one at `head` through each
/// event's link to the previous (no scan); every event is checked to belong to the stream.
public func streamHistory(_ source: any EventSource, tenant: String, stream: String, head: Int64) throws -> [StoredEvent] {
    let lane = source.lane(tenant: tenant, stream: stream)
    var events: [StoredEvent] = []
    var next: Int64? = head
    while let offset = next {
        let event = try source.readEvent(at: Position(partition: lane, offset: offset))
        guard event.tenant == tenant, event.stream == stream else {
            throw QueryError(description: "the view points at \(event.position) for \(tenant)/\(stream), which holds an event of \(event.tenant)/\(event.stream); `backorder replay` rebuilds the view")
        }
        guard events.last.map({ event.streamVersion == $0.streamVersion - 1 }) ?? true else {
            throw QueryError(description: "\(tenant)/\(stream): version \(event.streamVersion) at \(event.position) does not precede version \(events.last?.streamVersion ?? 0)")
        }
        events.append(event)
        next = event.previousOffset
    }
    return events.reversed()
}
