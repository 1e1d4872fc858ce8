import EventStore

/// The headers of a Backorder message on JetStream (docs/CLUSTER.md, "Mapping").
///
/// - `Backorder-Event-Id`: the event id, read by the headers-only pass that loads the ids.
/// - `Nats-Msg-Id`: `<subject>#<version>`, not the event id. The server keeps the ids of
///   the last `duplicate_window` and refuses a second message with one of them — and on
///   nats-server 2.9 that check, unlike the expected-sequence check, also covers messages
///   still being replicated. So two writers that both believe a stream is at version v
///   can never both store v + 1 (measured: with the event id here, racing writers stored
///   two messages at one version). A retry of the same publish is dropped the same way;
///   the store reads the stored message to tell its own retry from another writer's event.
/// - `Nats-Expected-Last-Subject-Sequence`: the sequence of the stream's version v, so a
///   writer whose view is older than the duplicate window is refused too.
enum ClusterHeaders {
    static let eventID = "Backorder-Event-Id"
    static let messageID = "Nats-Msg-Id"

    static func publish(event: EventID, subject: String, version: Int64, after sequence: UInt64) -> [(String, String)] {
        [(eventID, event.description), (messageID, "\(subject)#\(version)"), ("Nats-Expected-Last-Subject-Sequence", String(sequence))]
    }

    /// The version a `Nats-Msg-Id` names (what follows its last `#`), if it is one.
    static func version(messageID: String) -> Int64? {
        guard let mark = messageID.lastIndex(of: "#"), let version = Int64(messageID[messageID.index(after: mark)...]), version >= 1 else { return nil }
        return version
    }
}
