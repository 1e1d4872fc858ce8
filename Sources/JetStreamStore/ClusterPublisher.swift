import Dispatch
import EventLog
import EventStore
import Foundation
import Synchronization

/// One event ready to publish: its stream, subject, reserved version, and the epoch of
/// the stream's plan it was made under (`ClusterIndex.abandon`).
struct OutgoingEvent: Sendable {
    var event: NewEvent
    var key: StreamKey
    var subject: String
    var partition: Int
    var version: Int64
    var epoch: UInt64

    /// The refusal of this event: the stream is at `actual`, not where it was planned.
    func conflict(actual: Int64) -> EventStoreError {
        .wrongExpectedVersion(tenant: key.tenant, stream: key.stream, expected: event.expectedVersion, actual: actual)
    }
}

/// Publishes events to JetStream with the headers of `ClusterHeaders`, on `lanes`
/// serial queues: a stream's events
/// always go through the same lane, one at a time — on an R3 stream only one conditional
/// publish per subject can be in flight (docs/CLUSTER.md, finding 2) — while different
/// streams' events are published concurrently.
///
/// A publish that fails for a transient reason (no stream leader during an election, a
/// timeout, a reconnect) is retried with identical headers until `retrySeconds` pass:
/// the server drops a repeated id within its duplicate window, and a repeat after it is
/// refused as a wrong last sequence and then found by id (`resolveConflict`), so a retry
/// never stores an event twice.
final class ClusterPublisher: Sendable {
    private let connection: NatsConnection
    private let index: ClusterIndex
    private let stream: String
    private let group: String
    private let queues: [DispatchQueue]
    private let retrySeconds: Double

    init(connection: NatsConnection, index: ClusterIndex, stream: String, group: String, lanes: Int, retrySeconds: Double) {
        self.connection = connection
        self.group = group
        self.index = index
        self.stream = stream
        self.queues = (0..<max(1, lanes)).map { DispatchQueue(label: "backorder.publish.\($0)") }
        self.retrySeconds = retrySeconds
    }

    /// The lane of a subject.
    func lane(of subject: String) -> Int {
        Partitioner.partition(forKey: subject.utf8, partitionCount: queues.count)
    }

    /// Queues the events (each lane keeps their order) and returns their pending results.
    func publish(_ events: [OutgoingEvent], slots: [ClusterPendingAppend.Slot]) -> ClusterPendingAppend {
        let results = ClusterPendingAppend.Results(count: events.count)
        var byLane = [[Int]](repeating: [], count: queues.count)
        for (i, event) in events.enumerated() { byLane[lane(of: event.subject)].append(i) }
        for (lane, members) in byLane.enumerated() where !members.isEmpty {
            results.group.enter()
            queues[lane].async { [self] in
                for i in members {
                    results.set(i, Result { try publishOne(events[i]) })
                    index.settle(ScopedID(tenant: events[i].event.tenant, id: events[i].event.id))
                }
                results.group.leave()
            }
        }
        return ClusterPendingAppend(results: results, slots: slots)
    }

    /// Publishes one event (blocking this lane's thread) and records it in the index.
    private func publishOne(_ out: OutgoingEvent) throws -> AppendOutcome {
        if let failure = index.failure {
            // Not sent: later events of its stream, planned on top of it, must not be either.
            index.abandon(out.key)
            throw EventStoreError.unavailable("not sent: " + ClusterIndex.stopped(failure))
        }
        // The plan must still hold: if an event planned before this one in the stream was
        // refused or failed, this one assumed it (its version, and the domain state the
        // ingestor checked it against) and is refused too.
        guard let known = index.head(out.key, ifEpoch: out.epoch) else {
            throw out.conflict(actual: index.head(out.key)?.version ?? 0)
        }
        let head = known ?? ClusterIndex.Head(version: 0, sequence: 0)
        guard head.version == out.version - 1 else {
            index.abandon(out.key)
            throw out.conflict(actual: head.version)
        }
        let payload = EventEnvelope.encode(out.event, streamVersion: out.version,
                                           previousOffset: head.sequence == 0 ? nil : Int64(head.sequence) - 1)
        let headers = ClusterHeaders.publish(event: out.event.id, subject: out.subject, version: out.version, after: head.sequence)
        let deadline = Date().addingTimeInterval(retrySeconds)
        var attempt = 0
        while true {
            attempt += 1
            let ack: (sequence: UInt64, duplicate: Bool)
            do {
                ack = try connection.publish(subject: out.subject, payload: payload, headers: headers)
            } catch let error as NatsError where error.isWrongLastSequence {
                return try resolveConflict(out, after: head.sequence, firstAttempt: attempt == 1)
            } catch let error as NatsError where error.isTransient && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.25)
                continue
            } catch {
                index.abandon(out.key)
                index.fail("\(error)")
                throw error
            }
            if ack.duplicate && ack.sequence == 0 {
                // A duplicate of a message still being proposed: ask again shortly.
                guard Date() < deadline else {
                    index.abandon(out.key)
                    throw EventStoreError.unavailable("publishing to \(out.subject): the server kept answering \"duplicate of a message in flight\" for \(retrySeconds) s")
                }
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            let position = Position(partition: out.partition, offset: Int64(ack.sequence) - 1)
            guard ack.duplicate else {
                index.acknowledge(key: out.key, id: out.event.id, version: out.version, sequence: ack.sequence, partition: out.partition)
                return .appended(position, version: out.version)
            }
            // This version of the stream was stored before: by an earlier try of this
            // publish, by another writer's append of the same event, or by another writer's
            // different event — then this append lost the race for the version.
            let stored: StoredEvent
            do { stored = try storedEvent(sequence: ack.sequence) } catch {
                index.abandon(out.key)  // its outcome is unknown: later events of the stream must not assume it
                throw error
            }
            index.acknowledge(key: out.key, id: stored.id, version: stored.streamVersion, sequence: ack.sequence, partition: out.partition)
            guard stored.id == out.event.id else {
                index.abandon(out.key)
                throw out.conflict(actual: stored.streamVersion)
            }
            return attempt > 1 ? .appended(position, version: stored.streamVersion) : .duplicate(position, version: stored.streamVersion)
        }
    }

    /// The Backorder event stored at `sequence`.
    private func storedEvent(sequence: UInt64) throws -> StoredEvent {
        guard let message = try connection.message(stream: stream, sequence: sequence) else {
            throw EventStoreError.invalidArgument("message \(sequence) of \(stream) acknowledged but not found")
        }
        return try ClusterDecoding.event(message, group: group)
    }

    /// After "wrong last sequence": the subject moved past `sequence`. If one of the
    /// messages after it carries this event's id, the event is stored (an earlier try of
    /// ours, or someone else's append of the same id); otherwise another writer got there
    /// first and this append is a real conflict.
    private func resolveConflict(_ out: OutgoingEvent, after sequence: UInt64, firstAttempt: Bool) throws -> AppendOutcome {
        let last: StreamMessage?
        let newer: [StoredEvent]
        do {
            last = try connection.lastMessage(stream: stream, subject: out.subject)
            // The subject's messages after `sequence`, newest first, by their back-links.
            newer = try last.map { try ClusterLinks(connection: connection, stream: stream, group: group).walk(from: $0) { $0.position.offset + 1 > Int64(sequence) } } ?? []
        } catch {
            index.abandon(out.key)  // the outcome is unknown: later events of the stream must not assume it
            throw error
        }
        if let stored = newer.first(where: { $0.id == out.event.id }) {
            let storedSequence = UInt64(stored.position.offset + 1)
            index.acknowledge(key: out.key, id: out.event.id, version: stored.streamVersion, sequence: storedSequence, partition: out.partition)
            let position = Position(partition: out.partition, offset: stored.position.offset)
            return !firstAttempt && stored.streamVersion == out.version ? .appended(position, version: out.version) : .duplicate(position, version: stored.streamVersion)
        }
        // A real conflict: learn the stream's head first, then break the plan (in this
        // order, so that no append plans on the old head under the new epoch).
        var actual: Int64 = 0
        if let last, let newest = newer.first ?? (try? ClusterDecoding.event(last, group: group)) {
            actual = newest.streamVersion
            index.note(newer, of: out.key)
            index.refresh(out.key, to: ClusterIndex.Head(version: actual, sequence: last.sequence))
        }
        index.abandon(out.key)
        throw out.conflict(actual: actual)
    }
}

/// A JetStream append on its way: the lanes fill in one result per published event.
struct ClusterPendingAppend: PendingAppend {
    final class Results: @unchecked Sendable {
        let group = DispatchGroup()
        private let lock = NSLock()
        private var results: [Result<AppendOutcome, any Error>?]

        init(count: Int) { results = Array(repeating: nil, count: count) }

        func set(_ i: Int, _ result: Result<AppendOutcome, any Error>) { lock.withLock { results[i] = result } }
        var all: [Result<AppendOutcome, any Error>?] { lock.withLock { results } }
    }

    /// What becomes of each submitted event.
    enum Slot: Sendable {
        /// Published: the result at this index.
        case published(Int)
        /// Known before publishing (an id stored before).
        case known(AppendOutcome)
        /// The same id as an earlier event of the call: its outcome, as a duplicate.
        case sameAs(Int)
    }

    let results: Results
    let slots: [Slot]

    /// Waits for every event; the first failure is the first in input order (the events
    /// before it, and those of other streams, may be stored: a JetStream append is atomic
    /// per event, not per call).
    func settled() async -> AppendSettlement {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            results.group.notify(queue: .global()) { done.resume() }
        }
        let published = results.all
        var outcomes: [AppendOutcome?] = []
        var failure: (any Error)?
        outcomes.reserveCapacity(slots.count)
        for slot in slots {
            switch slot {
            case let .published(i):
                switch published[i] {
                case let .success(outcome)?:
                    outcomes.append(outcome)
                case let .failure(error)?:
                    outcomes.append(nil)
                    if failure == nil { failure = error }
                case nil:
                    outcomes.append(nil)
                    if failure == nil { failure = EventStoreError.invalidArgument("an event was never published") }
                }
            case let .known(outcome):
                outcomes.append(outcome)
            case let .sameAs(earlier):
                outcomes.append(outcomes[earlier].map { original in
                    let version: Int64 = switch original {
                    case let .appended(_, v), let .duplicate(_, v): v
                    }
                    return .duplicate(original.position, version: version)
                })
            }
        }
        return AppendSettlement(outcomes: outcomes, failure: failure)
    }
}
