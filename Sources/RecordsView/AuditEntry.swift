import EventStore
import OutOfStock

/// One event of a record's audit history (`audit history`, the server's
/// `/records/{id}/history`): who, when, what, and each field before → after.
public struct AuditEntry: Sendable, Encodable {
    public let version: Int64
    public let type: String
    public let at: String
    public let recordedAt: String
    public let actor: String
    public let correlationId: String?
    public let eventId: String
    public let position: String
    public let changes: [FieldChange]

    /// The entries of a stream's events, oldest first. Throws `QueryError` naming the
    /// position of an event whose data does not decode.
    public static func history(of events: [StoredEvent], stream: String) throws -> [AuditEntry] {
        var tracker = ChangeTracker()
        return try events.map { event in
            let decoded: EventData
            do { decoded = try EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion) } catch {
                throw QueryError(description: "event at position \(event.position) of \(stream): \(error)")
            }
            return AuditEntry(version: event.streamVersion, type: event.type, at: Timestamp.format(event.businessTime),
                              recordedAt: Timestamp.format(event.recordedTime), actor: event.actor, correlationId: event.correlationId,
                              eventId: event.id.description, position: event.position.description,
                              changes: tracker.apply(type: event.type, data: decoded))
        }
    }
}
