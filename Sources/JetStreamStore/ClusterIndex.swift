import EventStore
import Foundation

/// A Backorder stream's identity within a JetStream stream.
struct StreamKey: Hashable, Sendable {
    var tenant: String
    var stream: String
}

/// What one process knows of a JetStream stream's Backorder streams (docs/CLUSTER.md,
/// "Event ids and idempotency", layer 3): for each stream its version and the sequence of
/// its last message (`S(v)`), and where each event id is stored. Loaded at open by one
/// headers-only pass over the stream, then kept up to date by this process's
/// acknowledgements. It may fall behind other writers; the server's expected-sequence
/// check catches that, so a stale entry can refuse an append, never corrupt a stream.
final class ClusterIndex: Sendable {
    struct Head: Sendable, Equatable {
        /// The stream's version (number of its messages).
        var version: Int64
        /// The stream sequence of its last message (0: none).
        var sequence: UInt64
    }

    struct Entry: Sendable {
        var sequence: UInt64
        var version: Int64
        var partition: Int
    }

    private struct State {
        var heads: [StreamKey: Head] = [:]
        /// Versions handed out to submitted events that are not acknowledged yet.
        var planned: [StreamKey: Int64] = [:]
        /// Bumped when a stream's in-flight plan breaks (a publish refused, a race lost):
        /// every event planned under an older epoch is refused, not published — its
        /// version and its domain precondition assumed the events before it.
        var epochs: [StreamKey: UInt64] = [:]
        var ids: [ScopedID: Entry] = [:]
        /// Ids of events submitted and not yet settled (acknowledged, refused or failed).
        var inFlight: Set<ScopedID> = []
        /// Set by the first failed publish; appends stop until `resume(after:)` (or a reopen).
        var failure: String?
        /// Failures so far: a resume clears only the failure it learnt after.
        var failures: UInt64 = 0
        /// Every message up to this sequence was read in order at open (nil: not yet).
        var loadedThrough: UInt64?
        /// A stream's head as it was at `loadedThrough`, kept when it first moves past it
        /// (by this process's acknowledgements or a refresh): the id cache must describe
        /// the stream as of `loadedThrough`, with no knowledge of later messages mixed in
        /// (an inner nil: the stream did not exist then).
        var headsAtLoad: [StreamKey: Head?] = [:]
    }

    private let state = BlockingLocked(State())

    /// Adds one stored message (in stream order) while loading; a message already known
    /// (at or before the stream's known head) is skipped, so loading is idempotent.
    func load(key: StreamKey, id: EventID?, sequence: UInt64, partition: Int) {
        precondition(partition >= 0, "a loaded message of partition \(partition)")
        state.withLock { state in
            if let head = state.heads[key], head.sequence >= sequence { return }
            let version = (state.heads[key]?.version ?? 0) + 1
            state.heads[key] = Head(version: version, sequence: sequence)
            if let id { state.ids[ScopedID(tenant: key.tenant, id: id)] = Entry(sequence: sequence, version: version, partition: partition) }
        }
    }

    /// Adds one message read after the load (another writer's, or this process's own,
    /// in stream order): as `load`, keeping the head as of the load for the id cache.
    /// A message behind the stream's known head (a refresh from the stream's last message
    /// moved it past, recording only that message's id) still has its id recorded, with the
    /// version its `Nats-Msg-Id` names: an id never learnt would be appended again.
    func learn(key: StreamKey, id: EventID?, version messageVersion: Int64?, sequence: UInt64, partition: Int) {
        precondition(partition >= 0, "a learned message of partition \(partition)")
        state.withLock { state in
            if let head = state.heads[key], head.sequence >= sequence {
                if let id, let messageVersion, messageVersion <= head.version {
                    Self.record(ScopedID(tenant: key.tenant, id: id), Entry(sequence: sequence, version: messageVersion, partition: partition), &state)
                }
                return
            }
            Self.keepHeadAtLoad(key, &state)
            let version = (state.heads[key]?.version ?? 0) + 1
            state.heads[key] = Head(version: version, sequence: sequence)
            if let id { state.ids[ScopedID(tenant: key.tenant, id: id)] = Entry(sequence: sequence, version: version, partition: partition) }
        }
    }

    func head(_ key: StreamKey) -> Head? { state.withLock { $0.heads[key] } }

    func entry(_ id: ScopedID) -> Entry? { state.withLock { $0.ids[id] } }

    var failure: String? { state.withLock { $0.failure } }

    func fail(_ reason: String) {
        state.withLock { state in
            guard state.failure == nil else { return }
            state.failure = reason
            state.failures += 1
        }
    }

    /// The failure that stopped appends and its number, if they are stopped; and whether
    /// no submitted event waits for its publish to end.
    var stop: (failure: String, number: UInt64, idle: Bool)? {
        state.withLock { state in state.failure.map { ($0, state.failures, state.inFlight.isEmpty) } }
    }

    /// What an append is told while appends are stopped.
    static func stopped(_ failure: String) -> String {
        "appends stopped after a publish failed (\(failure)); they resume once the cluster answers and this writer has read what the stream holds (a server does that by itself; a command: run it again, stored ids come back as duplicates)"
    }

    /// Lets appends go on after failure `number`, once the stream's messages through its
    /// end were learnt after it with nothing in flight (`JetStreamStore.resumeAppends`).
    /// False when appends were already resumed, or stopped again by a later failure: that
    /// one needs its own learning.
    func resume(after number: UInt64) -> Bool {
        state.withLock { state in
            guard state.failure != nil, state.failures == number else { return false }
            // Nothing is planned while appends are stopped: no publish started since.
            precondition(state.inFlight.isEmpty, "appends stopped by failure \(number) with \(state.inFlight.count) events in flight")
            state.failure = nil
            return true
        }
    }

    /// Runs `body` with each stream's planned version (acknowledged or in flight) and
    /// epoch and the known ids, then reserves the versions it returns and runs `commit`
    /// with its result — all under one lock, so an append checks, reserves and queues its
    /// events in one step (two appends to one stream reach the lanes in the order they
    /// planned), and nothing is reserved when `body` throws.
    /// `inFlight` tells whether an id is being appended by an earlier call: the body
    /// refuses such an event (its outcome is not known yet), and returns the ids it sends.
    func plan<T>(_ body: (_ version: (StreamKey) -> Int64, _ epoch: (StreamKey) -> UInt64, _ known: (ScopedID) -> Entry?,
                          _ inFlight: (ScopedID) -> Bool) throws -> (T, reserved: [StreamKey: Int64], sending: [ScopedID]),
                 commit: (T) -> Void) throws {
        try state.withLock { state in
            if let failure = state.failure { throw EventStoreError.unavailable(Self.stopped(failure)) }
            let (result, reserved, sending) = try body({ max(state.planned[$0] ?? 0, state.heads[$0]?.version ?? 0) }, { state.epochs[$0] ?? 0 },
                                                       { state.ids[$0] }, { state.inFlight.contains($0) })
            for (key, version) in reserved { state.planned[key] = version }
            state.inFlight.formUnion(sending)
            commit(result)
        }
    }

    /// An event's publish ended, whatever its outcome.
    func settle(_ id: ScopedID) { state.withLock { _ = $0.inFlight.remove(id) } }

    /// The stream's head, if the plan an event was made under still holds.
    func head(_ key: StreamKey, ifEpoch epoch: UInt64) -> Head?? {
        state.withLock { state in (state.epochs[key] ?? 0) == epoch ? .some(state.heads[key]) : .none }
    }

    /// Records an acknowledged event of version `version` stored at `sequence`.
    func acknowledge(key: StreamKey, id: EventID, version: Int64, sequence: UInt64, partition: Int) {
        // Versions are handed out from 1 by `plan`, and stored ones are checked when decoded.
        precondition(version >= 1 && partition >= 0, "an acknowledgement of version \(version) in partition \(partition)")
        state.withLock { state in
            if (state.heads[key]?.version ?? 0) < version {
                Self.keepHeadAtLoad(key, &state)
                state.heads[key] = Head(version: version, sequence: sequence)
            }
            if state.planned[key].map({ $0 <= version }) == true { state.planned[key] = nil }
            state.ids[ScopedID(tenant: key.tenant, id: id)] = Entry(sequence: sequence, version: version, partition: partition)
        }
    }

    /// Records where events of `key` read from the server are stored, unless known: a refresh
    /// of the head from the same read then leaves no id of that stream unknown.
    func note(_ events: [StoredEvent], of key: StreamKey) {
        state.withLock { state in
            for event in events {
                Self.record(ScopedID(tenant: key.tenant, id: event.id),
                            Entry(sequence: UInt64(event.position.offset + 1), version: event.streamVersion, partition: event.position.partition), &state)
            }
        }
    }

    /// Records where an id read behind or beside the heads is stored, unless it is known.
    private static func record(_ id: ScopedID, _ entry: Entry, _ state: inout State) {
        if state.ids[id] == nil { state.ids[id] = entry }
    }

    /// Sets a stream's head to what the server holds, when that is newer (another writer
    /// appended).
    func refresh(_ key: StreamKey, to head: Head) {
        state.withLock { state in
            if (state.heads[key]?.version ?? 0) < head.version {
                Self.keepHeadAtLoad(key, &state)
                state.heads[key] = head
            }
        }
    }

    private static func keepHeadAtLoad(_ key: StreamKey, _ state: inout State) {
        guard let through = state.loadedThrough, state.headsAtLoad[key] == nil else { return }
        let head = state.heads[key]
        if (head?.sequence ?? 0) <= through { state.headsAtLoad[key] = .some(head) }
    }

    /// Marks the end of the load: the index holds every message up to `sequence`.
    func markLoaded(through sequence: UInt64) {
        state.withLock { state in
            state.loadedThrough = sequence
            state.headsAtLoad = [:]
        }
    }

    /// Breaks a stream's in-flight plan (a publish refused or failed, a race lost): its
    /// reservations are dropped and the events planned under it will not be published.
    func abandon(_ key: StreamKey) {
        state.withLock { state in
            state.planned[key] = nil
            state.epochs[key, default: 0] += 1
        }
    }

    /// What the index knew at `sequence`, the end of its load (for the id cache): the ids
    /// up to it, and each stream's head as it was then — later knowledge (this process's
    /// acknowledgements, refreshes) may have gaps: other writers' messages it never read.
    /// Nil unless the index was loaded through exactly `sequence`.
    func entries(through sequence: UInt64) -> (heads: [StreamKey: Head], ids: [ScopedID: Entry])? {
        state.withLock { state in
            guard state.loadedThrough == sequence else { return nil }
            var heads = state.heads.filter { $0.value.sequence <= sequence }
            for (key, head) in state.headsAtLoad { heads[key] = head }
            return (heads, state.ids.filter { $0.value.sequence <= sequence })
        }
    }

    /// Starts from entries read back from the id cache.
    func restore(heads: [StreamKey: Head], ids: [ScopedID: Entry]) {
        state.withLock { state in
            state.heads = heads
            state.ids = ids
        }
    }

    var streamCount: Int { state.withLock { $0.heads.count } }
    var eventCount: Int { state.withLock { $0.ids.count } }
}

/// A value behind a lock that blocks at once instead of spinning (an `NSLock`, i.e. a
/// pthread mutex): the index is taken by every publishing lane for every event, and
/// with more lanes than cores a spinning lock (`Synchronization.Mutex` on Linux) burned
/// ~16 % of the client's CPU in the profile of a 32-lane ingest.
final class BlockingLocked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
