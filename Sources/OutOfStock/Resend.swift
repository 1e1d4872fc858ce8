import EventStore

/// When an input line carries an id its tenant has used before, it is either the same
/// event sent again — acknowledged as a duplicate, stored once — or a different event
/// under a reused id, which is refused: silently dropping it would lose it
/// (docs/EVENTS.md, "Ids and resends").
///
/// "The same event" is judged on what the producer sent: type, stream, actor, correlation
/// id, business time when the line gives one (a line without `at` is timed at its first
/// append), and every data field. The names the store adds to a report
/// (`customerName`, `productName`) are not the producer's and are not compared.
extension InputEvent {
    /// A hash of what `isResend(of:)` compares, for lines accepted earlier in the same run
    /// (not stored yet): equal lines have equal fingerprints in one process.
    var resendFingerprint: Int {
        var hasher = Hasher()
        hasher.combine(type.kind)
        hasher.combine(tenant)
        hasher.combine(actor)
        hasher.combine(correlationId ?? "")
        hasher.combine(at)
        data.hashProducerFields(into: &hasher)
        return hasher.finalize()
    }

    /// Whether `stored`, the event stored under this line's id, is this line sent again.
    func isResend(of stored: StoredEvent) -> Bool {
        guard stored.tenant == tenant, stored.type == type.name, stored.stream == streamName, stored.actor == actor,
              (stored.correlationId ?? "") == (correlationId ?? ""), at == nil || at == stored.businessTime,
              let storedData = try? EventData.decode(stored.data, type: stored.type, schemaVersion: stored.schemaVersion) else { return false }
        return storedData.hasSameProducerFields(as: data)
    }
}
