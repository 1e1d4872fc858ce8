import Dispatch
import EventLog
import EventStore
import Foundation

/// How a JetStream store is reached and, when it is created, laid out.
public struct ClusterOptions: Sendable {
    /// Comma-separated server URLs, e.g. `nats://127.0.0.1:4222,nats://127.0.0.1:4223`.
    public var urls: String
    /// The tenant group: stream `BO_<group>`, subjects `bo.<group>.>`.
    public var group = "0"
    /// Replicas of a new stream (3: survives the loss of one node).
    public var replicas = 3
    /// Partitions of a new stream (the subject's partition token; fixed once created).
    public var partitionCount = 8
    /// Publishing lanes: streams published concurrently (each stream one event at a time).
    public var lanes = 32
    /// How long a publish is retried through leader elections and reconnects.
    public var retrySeconds = 30.0
    /// How long one request may wait for the server.
    public var requestTimeoutMilliseconds: Int64 = 5_000
    /// Create the stream when it does not exist.
    public var create = true
    /// The server's duplicate window of a new stream, seconds (JetStream's default: 2 min).
    /// Retries later than this are still recognised, by reading the stream (CLUSTER.md).
    public var duplicateWindowSeconds = 120.0

    /// Options for the servers at `urls`.
    public init(urls: String) { self.urls = urls }
}

/// The event store on a NATS JetStream stream (docs/CLUSTER.md): the same events, ids,
/// versions and outcomes as the embedded `EventStore`, replicated by JetStream.
///
/// One message per event, on subject `bo.<group>.<partition>.<tenant>.<stream>`, whose
/// payload is the event's envelope exactly as the embedded log stores it. A stream's
/// version is its number of messages; appends carry the event id, `Nats-Msg-Id` = subject
/// and version (so that two writers can never both store a version: the server drops
/// the second as a duplicate) and `Nats-Expected-Last-Subject-Sequence` (the sequence of
/// the version they follow); see `ClusterHeaders`.
/// Positions are (partition, stream sequence − 1).
///
/// Differences from the embedded store, all in docs/CLUSTER.md: an append is atomic per
/// event, not per call (JetStream 2.9 has no batch publish); it is acknowledged when a
/// quorum of nodes holds it in memory, before any fsync; appends of one process see
/// other processes' appends through the server's checks, not through a shared index.
public final class JetStreamStore: EventAppender, Sendable {
    let connection: NatsConnection
    let index: ClusterIndex
    let publisher: ClusterPublisher
    /// The options it was opened with.
    public let options: ClusterOptions
    /// The JetStream stream's name.
    public let streamName: String
    /// Partitions of the stream's subjects.
    public let partitionCount: Int
    /// The stream's replicas.
    public let replicas: Int
    /// The events, for projections and queries.
    public let source: JetStreamSource
    /// Opened without loading the ids and heads (for queries and audits).
    public let readOnly: Bool

    private init(connection: NatsConnection, options: ClusterOptions, status: StreamStatus, partitionCount: Int, readOnly: Bool) {
        self.connection = connection
        self.readOnly = readOnly
        self.options = options
        self.streamName = Self.streamName(group: options.group)
        self.partitionCount = partitionCount
        self.replicas = status.replicas
        self.index = ClusterIndex()
        self.publisher = ClusterPublisher(connection: connection, index: index, stream: streamName, group: options.group,
                                          lanes: options.lanes, retrySeconds: options.retrySeconds)
        self.source = JetStreamSource(connection: connection, stream: streamName, group: options.group,
                                      sourceID: "jetstream:\(streamName):\(status.createdNanoseconds)")
    }

    static func streamName(group: String) -> String { "BO_\(group)" }

    /// Connects, creates the stream if it is missing (and `options.create`), and — unless
    /// `readOnly` — loads the ids and stream heads with one headers-only pass.
    public static func open(_ options: ClusterOptions, readOnly: Bool = false) async throws -> JetStreamStore {
        guard !options.group.isEmpty, ClusterSubject.escape(options.group) == options.group, !options.group.contains("/") else {
            throw EventStoreError.invalidArgument("cluster group \"\(options.group)\" must be letters, digits, _ or -")
        }
        guard (1...5).contains(options.replicas) else { throw EventStoreError.invalidArgument("replicas must be 1...5, not \(options.replicas)") }
        guard (1...Limits.maxPartitions).contains(options.partitionCount) else {
            throw EventStoreError.invalidArgument("partitions must be 1...\(Limits.maxPartitions)")
        }
        return try await onThread {
            let connection = try NatsConnection(urls: options.urls, name: "backorder", requestTimeoutMilliseconds: options.requestTimeoutMilliseconds,
                                                retrySeconds: options.retrySeconds)
            let name = streamName(group: options.group)
            var status = try connection.streamStatus(name)
            if status == nil {
                guard options.create && !readOnly else { throw EventStoreError.invalidArgument("no Backorder stream \(name) on \(options.urls)") }
                status = try connection.createStream(StreamSpec(
                    name: name, subjects: ClusterSubject.wildcard(group: options.group), replicas: options.replicas,
                    description: "backorder event store; partitions=\(options.partitionCount)",
                    duplicateWindowNanoseconds: Int64(options.duplicateWindowSeconds * 1e9)))
            }
            guard let status, let partitions = partitionCount(description: status.description) else {
                throw EventStoreError.invalidArgument("stream \(name) on \(options.urls) was not created by Backorder (no partition count in its description)")
            }
            let store = JetStreamStore(connection: connection, options: options, status: status, partitionCount: partitions, readOnly: readOnly)
            if !readOnly { try store.loadIndex(upTo: status.lastSequence) }
            return store
        }
    }

    static func partitionCount(description: String) -> Int? {
        guard let range = description.range(of: "partitions=") else { return nil }
        return Int(description[range.upperBound...].prefix { $0.isNumber }).flatMap { (1...Limits.maxPartitions).contains($0) ? $0 : nil }
    }

    /// Reads every message's subject and id (headers only) up to `last`.
    private func loadIndex(upTo last: UInt64) throws {
        guard last > 0 else { return }
        let reader = StreamReader(connection: connection, stream: streamName, filter: ClusterSubject.wildcard(group: options.group),
                                  from: 1, until: last, headersOnly: true, retrySeconds: options.retrySeconds)
        var cache: [String: (StreamKey, Int)] = [:]
        while reader.nextSequence <= last, let message = try reader.next(waitMilliseconds: 0) {
            let place: (StreamKey, Int)
            if let known = cache[message.subject] { place = known } else {
                guard let parsed = ClusterSubject.parse(message.subject, group: options.group) else {
                    throw EventStoreError.malformedEvent(Position(partition: 0, offset: Int64(message.sequence) - 1),
                                                         "subject \(message.subject) is not one of Backorder's")
                }
                place = (StreamKey(tenant: parsed.tenant, stream: parsed.stream), parsed.partition)
                cache[message.subject] = place
            }
            index.load(key: place.0, id: message.eventID, sequence: message.sequence, partition: place.1)
        }
    }

    /// The partition a stream's subject carries (the embedded log's partitioner).
    public func partition(tenant: String, stream: String) -> Int {
        Partitioner.partition(forKey: Array(tenant.utf8) + [0] + Array(stream.utf8), partitionCount: partitionCount)
    }

    // MARK: EventAppender

    /// Where an event id is stored, as far as this process knows (the ids loaded at open
    /// and its own appends); the server's checks cover what it does not know.
    public func storedPosition(of id: EventID) throws -> StoredID? {
        index.entry(id).map { StoredID(position: Position(partition: $0.partition, offset: Int64($0.sequence) - 1), version: $0.version) }
    }

    /// The stream's current version as this process knows it.
    public func version(tenant: String, stream: String) -> Int64 {
        index.head(StreamKey(tenant: tenant, stream: stream))?.version ?? 0
    }

    /// Every event of a stream, in version order, read through a consumer filtered to its
    /// subject (no request when the stream is unknown). Checks that the versions are dense.
    public func readStream(tenant: String, stream: String) throws -> [StoredEvent] {
        let subject = ClusterSubject.subject(group: options.group, partition: partition(tenant: tenant, stream: stream), tenant: tenant, stream: stream)
        // A writer reads up to the last message it knows; a newer one from another writer
        // is read if it arrives at once, else the server refuses an append based on this
        // (then stale) state. A read-only store asks the server for the subject's last.
        let known = index.head(StreamKey(tenant: tenant, stream: stream))?.sequence
        guard let last = try known ?? (readOnly ? connection.lastMessage(stream: streamName, subject: subject)?.sequence : nil) else { return [] }
        let reader = StreamReader(connection: connection, stream: streamName, filter: subject, from: 1, until: last,
                                  headersOnly: false, retrySeconds: options.retrySeconds)
        var events: [StoredEvent] = []
        while let message = try reader.next(waitMilliseconds: 1) {
            let event = try ClusterDecoding.event(message, group: options.group)
            guard event.streamVersion == Int64(events.count) + 1 else {
                throw EventStoreError.malformedEvent(event.position, "stream \(tenant)/\(stream) has version \(event.streamVersion) where \(events.count + 1) belongs")
            }
            events.append(event)
        }
        return events
    }

    /// Checks every event (ids, expected versions) against what this process knows and
    /// reserves their versions — throwing before anything is sent when a check fails —
    /// then publishes them on the lanes.
    public func submitEvents(_ events: [NewEvent]) async throws -> any PendingAppend {
        var outgoing: [OutgoingEvent] = []
        var slots: [ClusterPendingAppend.Slot] = []
        outgoing.reserveCapacity(events.count)
        slots.reserveCapacity(events.count)
        try index.plan { plannedVersion, known in
            var versionInCall: [StreamKey: Int64] = [:]
            var firstWithID: [EventID: Int] = [:]
            for (i, event) in events.enumerated() {
                guard !event.tenant.isEmpty, !event.tenant.utf8.contains(0), !event.stream.isEmpty, !event.type.isEmpty else {
                    throw EventStoreError.invalidArgument("event \(i + 1): tenant, stream and type must be non-empty (and the tenant free of NUL bytes)")
                }
                guard EventEnvelope.sizeBound(event) <= EventEnvelope.maxBytes else {
                    throw EventStoreError.invalidArgument("event \(i + 1) (\(event.type) of stream \(event.stream)) is larger than the limit of \(EventEnvelope.maxBytes) bytes")
                }
                if let earlier = firstWithID[event.id] { slots.append(.sameAs(earlier)); continue }
                if let stored = known(event.id) {
                    slots.append(.known(.duplicate(Position(partition: stored.partition, offset: Int64(stored.sequence) - 1), version: stored.version)))
                    continue
                }
                let key = StreamKey(tenant: event.tenant, stream: event.stream)
                let current = versionInCall[key] ?? plannedVersion(key)
                guard event.expectedVersion.admits(current) else {
                    throw EventStoreError.wrongExpectedVersion(tenant: event.tenant, stream: event.stream, expected: event.expectedVersion, actual: current)
                }
                versionInCall[key] = current + 1
                firstWithID[event.id] = i
                let partition = partition(tenant: event.tenant, stream: event.stream)
                slots.append(.published(outgoing.count))
                outgoing.append(OutgoingEvent(event: event, key: key, subject: ClusterSubject.subject(
                    group: options.group, partition: partition, tenant: event.tenant, stream: event.stream), partition: partition, version: current + 1))
            }
            return ((), reserved: versionInCall)
        }
        return publisher.publish(outgoing, slots: slots)
    }

    /// What an acknowledged append survives here (docs/CLUSTER.md, "Durability, honestly").
    public var durabilityStatement: String { Self.durability(replicas: replicas) }

    static func durability(replicas: Int) -> String {
        if replicas >= 3 {
            return "JetStream R\(replicas) (nats-server 2.9): held by a majority of \(replicas) nodes before acknowledged, but not fsynced — "
                + "survives the crash or loss of \(replicas / 2) node\(replicas / 2 == 1 ? "" : "s"); a simultaneous power loss of the nodes can lose recent events"
        }
        return "JetStream R\(replicas) (nats-server 2.9): acknowledged from one server's memory, not fsynced — "
            + "survives a crash of the server process, not the loss of its machine or a power loss"
    }

    /// The stream's state and its replicas' (for `log stats`).
    public func status() async throws -> StreamStatus {
        try await Self.onThread { [connection, streamName] in
            guard let status = try connection.streamStatus(streamName) else { throw EventStoreError.invalidArgument("stream \(streamName) no longer exists") }
            return status
        }
    }

    /// Ids and streams this process knows (loaded and appended).
    public var knownCounts: (events: Int, streams: Int) { (index.eventCount, index.streamCount) }

    /// Runs a blocking client call on a thread of its own, not the cooperative pool.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
