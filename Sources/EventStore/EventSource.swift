import EventLog

/// Where projections, queries and audits read events from: the embedded log
/// (`EventReader`) or a JetStream stream (`JetStreamStore`).
///
/// Events are read in **lanes**: each lane is a dense, increasing run of offsets that a
/// view checkpoints as "the next offset to apply". The embedded log has one lane per
/// partition; a JetStream stream has one lane, its stream sequence minus one. An event's
/// own `position` names its partition and that offset.
public protocol EventSource: Sendable {
    /// Number of lanes (a view keeps one position per lane).
    var partitionCount: Int { get }
    /// The identity of the history read (a log's id; a JetStream stream's name and
    /// creation time): snapshots made from another history are not applied to this one.
    var sourceID: String? { get }
    /// The offset after the last event of each lane.
    func endOffsets() throws -> [Int64]
    /// The events of a lane from `offset` on, batch by batch.
    func events(partition: Int, from offset: Int64) throws -> EventCursor
    /// The event at `offset` of lane `position.partition`.
    func readEvent(at position: Position) throws -> StoredEvent
    /// The lane a stream's events are read in.
    func lane(tenant: String, stream: String) -> Int
    /// For each lane, the offset of the first event recorded after `moment` (µs since the
    /// epoch), or the lane's end when there is none.
    func offsets(recordedAfter moment: Int64) throws -> [Int64]
    /// An identity of the lane's history up to `offset`, cheap to read (nil when the back
    /// end has none there): two histories with equal marks at an offset are the same up to
    /// it. Views compare it instead of reading the event before their position.
    func historyMark(lane: Int, at offset: Int64) throws -> [UInt8]?
    /// Makes every event this source has shown durable, so that a view may commit
    /// positions up to them: a power cut must never leave a view ahead of its log.
    func makeDurable() throws
    /// Whether a lane's offsets follow one another with no gap (the embedded log's
    /// partitions), so that a reader may assert it; false for a lane whose offsets are
    /// positions in a larger sequence (a JetStream partition's stream sequences).
    var offsetsAreDense: Bool { get }
}

extension EventSource {
    /// No cheap mark: views read the event before their position instead.
    public func historyMark(lane: Int, at offset: Int64) throws -> [UInt8]? { nil }

    /// Nothing to do: what the source shows is durable already.
    public func makeDurable() throws {}

    public var offsetsAreDense: Bool { true }
}

extension EventReader: EventSource {
    /// The log's id (from its manifest).
    public var sourceID: String? { log.manifest.logID }

    /// The hash chain up to `offset`, from the header of the batch that ends there.
    public func historyMark(lane: Int, at offset: Int64) throws -> [UInt8]? {
        do { return try log.chain(partition: lane, endingAt: offset).map(\.bytes) } catch { throw EventStoreError.wrap(error) }
    }

    /// The stream's partition.
    public func lane(tenant: String, stream: String) -> Int { partition(tenant: tenant, stream: stream) }

    /// Syncs the log up to what this reader sees: through the writer when this process
    /// writes it in `none` or `interval` mode (its readers see records before they are
    /// durable); a read-only log syncs the segments it reads, since another process's
    /// writer may acknowledge before syncing.
    public func makeDurable() throws {
        do { try log.sync() } catch { throw EventStoreError.wrap(error) }
    }

    /// Found with each partition's time index.
    public func offsets(recordedAfter moment: Int64) throws -> [Int64] {
        let ends = try endOffsets()
        do {
            return try (0..<partitionCount).map {
                // Never past the reader's ends (a reader in recorded order stops short of the log's).
                min(try log.offset(partition: $0, atOrAfterTimestamp: moment == .max ? moment : moment + 1) ?? ends[$0], ends[$0])
            }
        } catch {
            throw EventStoreError.wrap(error)
        }
    }
}

/// What the ingestor needs from a store to check and append events, whichever back end
/// holds them.
public protocol EventAppender: AnyObject, Sendable {
    /// Where tenant `tenant`'s event id is stored (or in flight), and its stream version;
    /// nil when new. Ids are scoped by tenant (`ScopedID`).
    func storedPosition(of id: EventID, tenant: String) throws -> StoredID?
    /// The event at a position `storedPosition` returned (a resend is compared with it).
    func readEvent(at position: Position) throws -> StoredEvent
    /// Every acknowledged event of a stream, in version order.
    func readStream(tenant: String, stream: String) throws -> [StoredEvent]
    /// Checks and sends events; await `acknowledged()` on the result for the outcomes.
    func submitEvents(_ events: [NewEvent]) async throws -> any PendingAppend
    /// What an acknowledged append survives, in one line for people.
    var durabilityStatement: String { get }
    /// A stream's acknowledged version from the store's stream index (0: no stream), or nil
    /// when the back end cannot say without reading the stream.
    func streamVersion(tenant: String, stream: String) throws -> Int64?
    /// `storedPosition` of each id and `streamVersion` of each stream, in one call (a back
    /// end may answer many faster together).
    func lookUp(ids: [(tenant: String, id: EventID)], streams: [(tenant: String, stream: String)]) throws -> (positions: [StoredID?], versions: [Int64?])
    /// Waits until the appends submitted before the call have settled — their events read
    /// back by `readStream` — or `timeout` passed: an append refused because another one
    /// of its streams was in flight is decided again after this.
    func awaitSettled(timeout: Duration) async
}

extension EventAppender {
    /// Nothing to wait for: the back end reads back what it acknowledged.
    public func awaitSettled(timeout: Duration) async {}

    /// Unknown without reading the stream.
    public func streamVersion(tenant: String, stream: String) throws -> Int64? { nil }

    /// One lookup at a time.
    public func lookUp(ids: [(tenant: String, id: EventID)], streams: [(tenant: String, stream: String)]) throws -> (positions: [StoredID?], versions: [Int64?]) {
        (try ids.map { try storedPosition(of: $0.id, tenant: $0.tenant) }, try streams.map { try streamVersion(tenant: $0.tenant, stream: $0.stream) })
    }
}

/// An append on its way to the store.
public protocol PendingAppend: Sendable {
    /// Waits until every event is acknowledged or failed.
    func settled() async -> AppendSettlement
}

/// What became of an append's events: in the order they were submitted, the outcome of
/// each one the store acknowledged (a duplicate included), nil for each whose write failed
/// — and the first failure. After a failure some events may be stored and others not
/// (a batch per partition on the embedded log, an event on JetStream): this says which.
public struct AppendSettlement: Sendable {
    public let outcomes: [AppendOutcome?]
    public let failure: (any Error)?

    public init(outcomes: [AppendOutcome?], failure: (any Error)?) {
        precondition(failure != nil || !outcomes.contains(where: { $0 == nil }), "an append settled without a failure left an event without an outcome")
        self.outcomes = outcomes
        self.failure = failure
    }
}

extension PendingAppend {
    /// Waits until every event is acknowledged; throws the first failure. The outcomes
    /// are in the order of the submitted events.
    public func acknowledged() async throws -> [AppendOutcome] {
        let settled = await settled()
        if let failure = settled.failure { throw failure }
        return settled.outcomes.map { $0! }
    }
}

extension SubmittedAppend: PendingAppend {}

extension EventStore: EventAppender {
    /// Polls the index (every 250 µs: a settle takes a fsync, a few milliseconds) until
    /// every batch submitted before the call is in its rows, or its partition failed.
    public func awaitSettled(timeout: Duration) async {
        let targets = index.lock.withLock { index.nextOffset }
        let deadline = ContinuousClock.now + timeout
        while !index.lock.withLock({ index.hasSettled(through: targets) }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .microseconds(250))
        }
    }

    /// From the stream index (one probe).
    public func streamVersion(tenant: String, stream: String) throws -> Int64? { try version(tenant: tenant, stream: stream) }

    /// `submit`, as the appender protocol names it.
    public func submitEvents(_ events: [NewEvent]) async throws -> any PendingAppend {
        try await submit(events)
    }

    /// What the log's durability mode promises.
    public var durabilityStatement: String {
        switch options.log.durability {
        case .fsync: "fsync — on disk before acknowledged; survives kill -9 and power loss"
        case let .interval(ms): "interval(\(ms) ms) — written to the OS; survives kill -9, a power loss may lose the last \(ms) ms"
        case .none: "none — written to the OS; survives kill -9, a power loss may lose unsynced events"
        }
    }
}
