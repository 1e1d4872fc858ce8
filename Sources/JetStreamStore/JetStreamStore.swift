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
    public var lanes = 128
    /// How long a publish is retried through leader elections and reconnects (more than
    /// 0, at most `maxRetrySeconds`).
    public var retrySeconds = 30.0
    public static let maxRetrySeconds = 3_600.0
    /// How long one request may wait for the server.
    public var requestTimeoutMilliseconds: Int64 = 5_000
    /// Create the stream when it does not exist.
    public var create = true
    /// Where a writer keeps its id cache (`ids.cache`): the next open reads only the
    /// messages after it. Nil: every writable open reads the whole stream's ids.
    public var cacheDirectory: String?
    /// The server's duplicate window of a new stream, seconds (JetStream's default: 2 min).
    /// Retries later than this are still recognised, by reading the stream (CLUSTER.md).
    public var duplicateWindowSeconds = 120.0
    /// Where the id cache is read and written: the one interface every file of the store
    /// goes through (the fault simulator's, in tests).
    public var storage: any Storage = PosixStorage()

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
///
/// Sendable: `idLoad` and `loadedThrough` are written only by `open`, before the store is
/// returned; everything shared afterwards is immutable or guarded (`ClusterIndex`).
public final class JetStreamStore: EventAppender, @unchecked Sendable {
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
    /// How the ids were loaded at open: from the cache through `cachedThrough`, then
    /// `messagesRead` messages from the stream (or why the cache was not used).
    public private(set) var idLoad = IDLoad()
    /// Every message up to this sequence is in the index (the next cache's `through`).
    private var loadedThrough: UInt64 = 0
    /// The event id of message `loadedThrough` (the next cache's `lastEventID`).
    private var loadedThroughID: EventID?
    /// Reads the messages after the load for `learnAppends` (one caller at a time).
    private let learning = NSLock()
    private var learner: StreamReader?

    /// How an open loaded the ids and stream heads.
    public struct IDLoad: Sendable {
        /// The cache's sequence, if one was used.
        public var cachedThrough: UInt64?
        /// Messages read from the stream (headers only).
        public var messagesRead: Int = 0
        /// Why a cache file was not used (missing is not reported).
        public var cacheSkipped: String?
    }

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
        guard !options.group.isEmpty, options.group.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0)
                                                                  || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
            throw EventStoreError.invalidArgument("cluster group \"\(options.group)\" must be letters, digits, _ or -")
        }
        guard (1...5).contains(options.replicas) else { throw EventStoreError.invalidArgument("replicas must be 1...5, not \(options.replicas)") }
        guard options.retrySeconds > 0 && options.retrySeconds <= ClusterOptions.maxRetrySeconds else {
            throw EventStoreError.invalidArgument("retrySeconds must be more than 0 and at most \(Int(ClusterOptions.maxRetrySeconds)), not \(options.retrySeconds)")
        }
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

    /// Loads the ids and heads: the cache's, then every later message's subject and id
    /// (headers only) up to `last`. (Runs in `open`, before the store is shared.)
    private func loadIndex(upTo last: UInt64) throws {
        var from: UInt64 = 1
        // A cache that cannot be read is one that is not there: the stream is read instead.
        if let path = cachePath, let bytes = try? options.storage.readWholeFile(path, limit: ClusterIndexFile.maxBytes) {
            switch ClusterIndexFile.decode(bytes) {
            case let .success(cache) where cache.sourceID == source.sourceID && cache.through <= last:
                // The stream must still hold, at the file's sequence, the event the file
                // was made after (acknowledged events lost with a quorum, others written
                // since, would otherwise be answered as stored forever).
                let atThrough = try cache.through == 0 ? nil : connection.message(stream: streamName, sequence: cache.through)?.eventID
                guard atThrough == cache.lastEventID else {
                    idLoad.cacheSkipped = "\(path): the stream's message \(cache.through) is not the one the cache was made after"
                    break
                }
                index.restore(heads: cache.heads, ids: cache.ids)
                idLoad.cachedThrough = cache.through
                loadedThroughID = cache.lastEventID
                from = cache.through + 1
            case .success:
                idLoad.cacheSkipped = "\(path) is from another stream, or ahead of it"
            case let .failure(reason):
                idLoad.cacheSkipped = "\(path): \(reason)"
            }
        }
        loadedThrough = from - 1
        guard last >= from else { return index.markLoaded(through: loadedThrough) }
        let reader = StreamReader(connection: connection, stream: streamName, filter: ClusterSubject.wildcard(group: options.group),
                                  from: from, until: last, headersOnly: true, retrySeconds: options.retrySeconds)
        var cache: [String: (StreamKey, Int)] = [:]
        while reader.nextSequence <= last, let message = try reader.next(waitMilliseconds: 0) {
            let place: (StreamKey, Int)
            if let known = cache[message.subject] { place = known } else {
                place = try self.place(of: message)
                cache[message.subject] = place
            }
            index.load(key: place.0, id: message.eventID, sequence: message.sequence, partition: place.1)
            loadedThroughID = message.eventID
            idLoad.messagesRead += 1
        }
        loadedThrough = last
        index.markLoaded(through: last)
    }

    /// Reads the headers of the messages after those read so far, through `last` (a
    /// sequence known to exist, such as the stream's end), into the index: the ids and
    /// stream heads other writers made since the open become known, so that a
    /// long-running writer (a server) decides on them — a stream they created is found,
    /// an id they stored is a duplicate. The cost follows the new messages (this
    /// process's own among them); one ordered consumer is kept between calls.
    public func learnAppends(through last: UInt64) throws {
        precondition(!readOnly, "a read-only store has no index to teach")
        try learning.withLock {
            let reader: StreamReader
            if let learner { reader = learner } else {
                reader = StreamReader(connection: connection, stream: streamName, filter: ClusterSubject.wildcard(group: options.group),
                                      from: loadedThrough + 1, until: last, headersOnly: true, retrySeconds: options.retrySeconds)
                learner = reader
            }
            reader.extend(until: last)
            while reader.nextSequence <= last, let message = try reader.next(waitMilliseconds: 0) {
                let (key, partition) = try place(of: message)
                index.learn(key: key, id: message.eventID, version: message.version, sequence: message.sequence, partition: partition)
            }
        }
    }

    /// The Backorder stream and partition a message's subject names; an error naming the
    /// message when it is not one of this store's subjects.
    private func place(of message: StreamMessage) throws -> (StreamKey, Int) {
        guard let parsed = ClusterSubject.parse(message.subject, group: options.group), parsed.partition < partitionCount else {
            throw EventStoreError.malformedEvent(Position(partition: 0, offset: Int64(message.sequence) - 1),
                                                 "subject \(message.subject) is not one of Backorder's (partitions 0…\(partitionCount - 1))")
        }
        return (StreamKey(tenant: parsed.tenant, stream: parsed.stream), parsed.partition)
    }

    /// Why appends stopped (a publish failed: `resumeAppends`, or a reopen), if they did.
    public var appendFailure: String? { index.failure }

    /// After a failed publish (`appendFailure`), lets appends go on once the cluster answers
    /// again, without a reopen: true when they may (or never stopped), false while a
    /// publish is still in flight; throws while the cluster does not answer.
    ///
    /// The failed event's outcome is unknown: it may have been stored after all. So the
    /// messages through the stream's end are learnt first, and an event stored by the
    /// failed publish is known (a resend of it is a duplicate) before anything new is
    /// planned. Its stream was abandoned when the publish failed, so nothing planned on top
    /// of it is sent. A failed message that lands even later (a proposal the cluster commits
    /// after a leader change) carries `Nats-Msg-Id` `<subject>#<version>` and the expected
    /// subject sequence it was sent with: the duplicate window, then the sequence check,
    /// refuse it if a new append took that version meanwhile — as for two racing writers.
    public func resumeAppends() throws -> Bool {
        precondition(!readOnly, "a read-only store does not append")
        guard let stop = index.stop else { return true }
        guard stop.idle else { return false }
        let end = try source.endOffsets()
        try learnAppends(through: UInt64(max(0, end[0])))
        // Another caller may have resumed meanwhile (and appends failed again since): then
        // this learning does not vouch for the newer failure, and the next call learns again.
        return index.resume(after: stop.number) || index.failure == nil
    }

    private var cachePath: String? { options.cacheDirectory.map { $0 + "/" + ClusterIndexFile.fileName } }

    /// Saves what this process knows up to the sequence through which it read the whole
    /// stream (its own later acknowledgements may sit between other writers' messages it
    /// has not read). Replaced atomically through `Storage` (a temporary file, synced and
    /// renamed); a lost or torn cache only means the next open reads more of the stream.
    public func saveIDCache() throws {
        guard !readOnly, let directory = options.cacheDirectory, let sourceID = source.sourceID else { return }
        guard let (heads, ids) = index.entries(through: loadedThrough) else { return }
        let bytes = ClusterIndexFile.encode(.init(sourceID: sourceID, through: loadedThrough, lastEventID: loadedThroughID, heads: heads, ids: ids))
        if !options.storage.exists(directory) { try options.storage.createDirectory(directory) }
        try options.storage.writeAtomically(bytes, directory: directory, name: ClusterIndexFile.fileName)
    }

    /// The partition a stream's subject carries (the embedded log's partitioner).
    public func partition(tenant: String, stream: String) -> Int {
        Self.partition(tenant: tenant, stream: stream, partitionCount: partitionCount)
    }

    static func partition(tenant: String, stream: String, partitionCount: Int) -> Int {
        Partitioner.partition(forKey: EventEnvelope.key(tenant: tenant, stream: stream), partitionCount: partitionCount)
    }

    // MARK: EventAppender

    /// Where an event id is stored, as far as this process knows (the ids loaded at open
    /// and its own appends); the server's checks cover what it does not know.
    public func storedPosition(of id: EventID, tenant: String) throws -> StoredID? {
        index.entry(ScopedID(tenant: tenant, id: id)).map { StoredID(position: Position(partition: $0.partition, offset: Int64($0.sequence) - 1), version: $0.version) }
    }

    /// The event at a position (read from the stream leader).
    public func readEvent(at position: Position) throws -> StoredEvent { try source.readEvent(at: position) }

    /// The stream's current version as this process knows it.
    public func version(tenant: String, stream: String) -> Int64 {
        index.head(StreamKey(tenant: tenant, stream: stream))?.version ?? 0
    }

    /// Every event of a stream, in version order: its subject's last message, then the
    /// envelopes' back-links, each read by sequence from the stream leader
    /// (`STREAM.MSG.GET`) — as the embedded store follows its links, and without a
    /// consumer (creating one is a round of the cluster's metadata Raft group, and on
    /// 2.9 it may land on a replica that is behind). Checks density and identity.
    public func readStream(tenant: String, stream: String) throws -> [StoredEvent] {
        // A writer knows every stream that existed when it opened and every one it wrote:
        // a stream it does not know is new, without a request (if another writer has just
        // created it, the server refuses the append built on this empty state).
        guard readOnly || index.head(StreamKey(tenant: tenant, stream: stream)) != nil else { return [] }
        return try readCurrentStream(tenant: tenant, stream: stream)
    }

    /// Every event of a stream as the server holds it now — asked even for a stream this
    /// process has never seen (another writer may have made it since the open): what a
    /// reader beside other writers, such as a server's `GET`, must answer.
    public func readCurrentStream(tenant: String, stream: String) throws -> [StoredEvent] {
        let subject = ClusterSubject.subject(group: options.group, partition: partition(tenant: tenant, stream: stream), tenant: tenant, stream: stream)
        guard let last = try connection.lastMessage(stream: streamName, subject: subject) else { return [] }
        let events = try ClusterLinks(connection: connection, stream: streamName, group: options.group).walk(from: last) { _ in true }
        guard events.last?.streamVersion == 1 else {
            throw EventStoreError.malformedEvent(events.last?.position ?? Position(partition: 0, offset: Int64(last.sequence) - 1),
                                                 "stream \(tenant)/\(stream) does not start at version 1")
        }
        if !readOnly, let newest = events.first {
            let key = StreamKey(tenant: tenant, stream: stream)
            index.note(events, of: key)
            index.refresh(key, to: .init(version: newest.streamVersion, sequence: last.sequence))
        }
        return events.reversed()
    }

    /// Checks every event (ids, expected versions) against what this process knows and
    /// reserves their versions — throwing before anything is sent when a check fails —
    /// then queues them on the lanes. A refusal that may only mean this process is behind
    /// (a stream it believes older than the caller does) is checked once more after
    /// asking the server for the stream's last message.
    public func submitEvents(_ events: [NewEvent]) async throws -> any PendingAppend {
        let resent = events.compactMap { event in index.entry(ScopedID(tenant: event.tenant, id: event.id)).map { (event, $0) } }
        if !resent.isEmpty { try await Self.onThread { [self] in try checkResends(resent) } }
        do {
            return try plan(events)
        } catch let EventStoreError.wrongExpectedVersion(tenant, stream, expected, actual) where Self.mayBeStale(expected, actual) {
            _ = try await Self.onThread { [self] in try currentVersion(tenant: tenant, stream: stream) }  // refreshes the head
            return try plan(events)
        }
    }

    /// An event whose id is known to be stored must be that event sent again: each is read
    /// back (one request) and compared, before the plan's lock is taken.
    private func checkResends(_ resent: [(NewEvent, ClusterIndex.Entry)]) throws {
        for (event, entry) in resent {
            let position = Position(partition: entry.partition, offset: Int64(entry.sequence) - 1)
            guard event.isResend(of: try readEvent(at: position)) else {
                throw EventStoreError.idConflict(tenant: event.tenant, id: event.id, original: "the event stored at \(position)")
            }
        }
    }

    /// Whether a refusal at version `actual` could be lifted by learning of newer events.
    static func mayBeStale(_ expected: ExpectedVersion, _ actual: Int64) -> Bool {
        switch expected {
        case let .exact(n): n > actual
        case .exists: actual == 0
        case .any, .noStream: false
        }
    }

    /// A stream's version as the server holds it now (0: no stream), from its subject's
    /// last message (one request); a writer's index learns it too.
    public func currentVersion(tenant: String, stream: String) throws -> Int64 {
        let subject = ClusterSubject.subject(group: options.group, partition: partition(tenant: tenant, stream: stream), tenant: tenant, stream: stream)
        guard let last = try connection.lastMessage(stream: streamName, subject: subject) else { return 0 }
        let event = try ClusterDecoding.event(last, group: options.group)
        if !readOnly {
            let key = StreamKey(tenant: tenant, stream: stream)
            index.note([event], of: key)
            index.refresh(key, to: .init(version: event.streamVersion, sequence: last.sequence))
        }
        return event.streamVersion
    }

    private func plan(_ events: [NewEvent]) throws -> any PendingAppend {
        var pending: ClusterPendingAppend?
        try index.plan({ plannedVersion, epoch, known, inFlight -> ((outgoing: [OutgoingEvent], slots: [ClusterPendingAppend.Slot]), reserved: [StreamKey: Int64], sending: [ScopedID]) in
            var outgoing: [OutgoingEvent] = [], slots: [ClusterPendingAppend.Slot] = []
            outgoing.reserveCapacity(events.count)
            slots.reserveCapacity(events.count)
            var versionInCall: [StreamKey: Int64] = [:]
            var firstWithID: [ScopedID: Int] = [:]
            for (i, event) in events.enumerated() {
                let id = ScopedID(tenant: event.tenant, id: event.id)
                guard !event.tenant.isEmpty, !event.tenant.utf8.contains(0), !event.stream.isEmpty, !event.type.isEmpty else {
                    throw EventStoreError.invalidArgument("event \(i + 1): tenant, stream and type must be non-empty (and the tenant free of NUL bytes)")
                }
                guard EventEnvelope.sizeBound(event) <= EventEnvelope.maxBytes else {
                    throw EventStoreError.invalidArgument("event \(i + 1) (\(event.type) of stream \(event.stream)) is larger than the limit of \(EventEnvelope.maxBytes) bytes")
                }
                if let earlier = firstWithID[id] {
                    guard event.isResend(of: events[earlier]) else {
                        throw EventStoreError.idConflict(tenant: event.tenant, id: event.id, original: "event \(earlier + 1) of this append")
                    }
                    slots.append(.sameAs(earlier))
                    continue
                }
                if let stored = known(id) {
                    slots.append(.known(.duplicate(Position(partition: stored.partition, offset: Int64(stored.sequence) - 1), version: stored.version)))
                    continue
                }
                guard !inFlight(id) else {
                    // Not the caller's mistake, and over once that publish settles (within
                    // the retry time): a server answers 503, to be tried again.
                    throw EventStoreError.unavailable("event \(i + 1) (id \(event.id)) is being appended by an earlier call that is not acknowledged yet; await it first")
                }
                let key = StreamKey(tenant: event.tenant, stream: event.stream)
                let current = versionInCall[key] ?? plannedVersion(key)
                guard event.expectedVersion.admits(current) else {
                    throw EventStoreError.wrongExpectedVersion(tenant: event.tenant, stream: event.stream, expected: event.expectedVersion, actual: current)
                }
                versionInCall[key] = current + 1
                firstWithID[id] = i
                let partition = partition(tenant: event.tenant, stream: event.stream)
                slots.append(.published(outgoing.count))
                outgoing.append(OutgoingEvent(
                    event: event, key: key, subject: ClusterSubject.subject(group: options.group, partition: partition, tenant: event.tenant, stream: event.stream),
                    partition: partition, version: current + 1, epoch: epoch(key)))
            }
            return ((outgoing, slots), reserved: versionInCall, sending: outgoing.map { ScopedID(tenant: $0.event.tenant, id: $0.event.id) })
        }, commit: { planned in
            pending = publisher.publish(planned.outgoing, slots: planned.slots)
        })
        guard let pending else { throw EventStoreError.invalidArgument("an append was planned but not queued") }
        return pending
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
    public static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
