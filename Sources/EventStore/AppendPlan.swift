import EventLog
import Foundation

/// One append call: checks every event against the indexes, then assigns versions and
/// offsets, encodes, and submits the batches — all under the locks of the partitions it
/// touches, so that no other append can slip in between a check and its write.
struct AppendPlan {
    typealias Indexed = IndexedEvent

    struct Submission: Sendable {
        let partition: Int
        let ticket: AppendTicket
        let indexed: [Indexed]
    }

    /// Largest encoded event; batches are cut at `maxBatchBytes` of events.
    static let maxEventBytes = 1 << 20
    static let maxBatchBytes = 8 << 20

    let events: [NewEvent]
    let store: EventStore
    let hashes: [StreamHash]
    let scopedIDs: [ScopedID]
    let partitionOfEvent: [Int]
    let partitionNumbers: [Int]

    init(events: [NewEvent], store: EventStore) throws {
        self.events = events
        self.store = store
        var hashes: [StreamHash] = [], scopedIDs: [ScopedID] = [], partitionOfEvent: [Int] = []
        hashes.reserveCapacity(events.count)
        scopedIDs.reserveCapacity(events.count)
        partitionOfEvent.reserveCapacity(events.count)
        // Fields are read in place (`events[i].tenant`): a copy of each event would retain
        // and release its six strings and arrays, here and in the passes below.
        for i in events.indices {
            guard !events[i].tenant.isEmpty, !events[i].tenant.utf8.contains(0), !events[i].stream.isEmpty, !events[i].type.isEmpty else {
                throw EventStoreError.invalidArgument("event \(i + 1): tenant, stream and type must be non-empty (and the tenant free of NUL bytes)")
            }
            let key = EnvelopeCodec.key(tenant: events[i].tenant, stream: events[i].stream)
            // Size limits are checked here, before anything is submitted, so that a write
            // can only fail for I/O reasons.
            guard key.count <= Limits.maxKeyBytes, EnvelopeCodec.encodedSizeBound(events[i]) <= Self.maxEventBytes else {
                throw EventStoreError.invalidArgument("event \(i + 1) (\(events[i].type) of stream \(events[i].stream)) is larger than the limit of \(Self.maxEventBytes) bytes")
            }
            hashes.append(StreamHash(key: key))
            scopedIDs.append(ScopedID(tenant: events[i].tenant, id: events[i].id))
            partitionOfEvent.append(store.log.partition(forKey: key))
        }
        self.hashes = hashes
        self.scopedIDs = scopedIDs
        self.partitionOfEvent = partitionOfEvent
        self.partitionNumbers = Array(Set(partitionOfEvent)).sorted()
    }

    /// Checks, then submits, holding the index lock so that no other append slips in
    /// between a check and its write. Throws before submitting anything when a check fails.
    /// The batches are queued uncompressed and compressed once the lock is let go — here,
    /// unless the partitions' writers took them first (`QueuedBatch`): compressing under
    /// the lock was a tenth of a batched append's thread, and other appenders waited on it.
    func checkAndSubmit() throws -> SubmittedAppend {
        let (submitted, batches) = try checkAndQueue()
        for batch in batches { batch.compress() }
        return submitted
    }

    /// `checkAndSubmit` under the index lock: the batches are queued uncompressed.
    private func checkAndQueue() throws -> (SubmittedAppend, [QueuedBatch]) {
        let index = store.index
        index.lock.lock()
        defer { index.lock.unlock() }
        for partition in partitionNumbers {
            if let failure = index.failure[partition] { throw EventStoreError.partitionFailed(partition, failure.description) }
        }

        // Pass 1: duplicates and expected versions. Nothing is changed yet.
        var outcomes = [AppendOutcome?](repeating: nil, count: events.count)
        var duplicateOf = [Int?](repeating: nil, count: events.count)
        var versions = [Int64](repeating: 0, count: events.count)
        var versionInCall = WordPairTable<StreamHash, Int64>(capacity: events.count)
        // Each stream's last offset before this call, looked up once (pass 2 links to it).
        var headOffset = WordPairTable<StreamHash, Int64>(capacity: events.count)
        var firstWithID = WordPairTable<ScopedID, Int>(capacity: events.count)
        // Where every id is and every stream's head, looked up together (a few of them — a
        // stream seen earlier in this call — are not needed). Nothing changes them before
        // pass 2: the index lock is held.
        let found = try index.current(ids: scopedIDs, streams: hashes, partitions: partitionOfEvent)
        for i in events.indices {
            let id = scopedIDs[i]
            func conflict(_ original: String) -> EventStoreError { .idConflict(tenant: events[i].tenant, id: events[i].id, original: original) }
            if let earlier = firstWithID[id] {
                guard events[i].isResend(of: events[earlier]) else { throw conflict("event \(earlier + 1) of this append") }
                duplicateOf[i] = earlier
                continue
            }
            // `found` holds in-flight ids too: an id it does not know is in neither table.
            if found.ids[i] != nil, let inFlight = index.inFlightIDs[id] {
                let position = inFlight.position
                // A duplicate of an event still in flight in a failed partition may never
                // have reached the disk: do not vouch for it.
                if let failure = index.failure[position.partition] { throw EventStoreError.partitionFailed(position.partition, failure.description) }
                guard events[i].isResend(of: inFlight.event) else { throw conflict("an event being appended (partition \(position.partition), offset \(position.offset))") }
                outcomes[i] = .duplicate(Position(partition: position.partition, offset: position.offset), version: position.version)
                continue
            }
            if let stored = found.ids[i] {
                let position = Position(partition: stored.partition, offset: stored.offset)
                guard events[i].isResend(of: try store.readEvent(at: position)) else { throw conflict("the event stored at \(position)") }
                outcomes[i] = .duplicate(position, version: stored.version)
                continue
            }
            let current: Int64
            if let inCall = versionInCall[hashes[i]] {
                current = inCall
            } else {
                let head = found.heads[i]
                current = head?.version ?? 0
                if let head { headOffset[hashes[i]] = head.offset }
            }
            guard events[i].expectedVersion.admits(current) else {
                throw EventStoreError.wrongExpectedVersion(tenant: events[i].tenant, stream: events[i].stream, expected: events[i].expectedVersion, actual: current)
            }
            precondition(current >= 0, "stream \(events[i].stream) of tenant \(events[i].tenant) at version \(current)")
            versions[i] = current + 1
            versionInCall[hashes[i]] = current + 1
            firstWithID[id] = i
        }

        // Pass 2: offsets, links, encoding and submission, partition by partition.
        let recordedTime = recordedTimes(index, new: { outcomes[$0] == nil && duplicateOf[$0] == nil })
        var submissions: [Submission] = []
        var queued: [QueuedBatch] = []
        let submitted = SubmittedEvents(events)
        var value: [UInt8] = []
        var members = [[Int]](repeating: [], count: store.log.partitionCount)
        for i in events.indices where outcomes[i] == nil && duplicateOf[i] == nil { members[partitionOfEvent[i]].append(i) }
        for partition in partitionNumbers {
            let members = members[partition]
            var previousInCall = WordPairTable<StreamHash, Int64>(capacity: members.count)
            var start = 0
            while start < members.count {
                // Up to maxEventsPerBatch events and maxBatchBytes (well under the log's limits).
                var end = start, bytes = 0
                while end < members.count && end - start < store.options.maxEventsPerBatch {
                    let size = EnvelopeCodec.encodedSizeBound(events[members[end]])
                    if end > start && bytes + size > Self.maxBatchBytes { break }
                    bytes += size
                    end += 1
                }
                let chunk = members[start..<end]
                start = end
                var batch = RecordBatchBuilder(reservingCapacity: chunk.count * 200)
                var indexed: [Indexed] = []
                indexed.reserveCapacity(chunk.count)
                let base = index.nextOffset[partition]
                for (k, i) in chunk.enumerated() {
                    let offset = base + Int64(k)
                    let previous = previousInCall[hashes[i]] ?? headOffset[hashes[i]]
                    EnvelopeCodec.encode(events[i], streamVersion: versions[i], previousOffset: previous, into: &value)
                    try batch.append(key: EnvelopeCodec.key(tenant: events[i].tenant, stream: events[i].stream), value: value, timestamp: recordedTime[i])
                    previousInCall[hashes[i]] = offset
                    indexed.append(IndexedEvent(id: scopedIDs[i], stream: hashes[i], version: versions[i], offset: offset,
                                                shortKeyWasFree: found.shortKeyFree[i]))
                    outcomes[i] = .appended(Position(partition: partition, offset: offset), version: versions[i])
                }
                let ticket: AppendTicket
                do {
                    let (queuedTicket, queuedBatch) = try store.log.queue(batch, partition: partition, expectedBaseOffset: base)
                    ticket = queuedTicket
                    queued.append(queuedBatch)
                } catch {
                    let failure = EventStoreError.wrap(error)
                    index.failure[partition] = failure
                    // Batches already submitted for other partitions still reach the log:
                    // see them through to the indexes, so nothing stays in flight forever.
                    let earlier = SubmittedAppend(index: index, submissions: submissions, outcomes: [])
                    Task.detached { _ = try? await earlier.acknowledged() }
                    throw failure
                }
                index.nextOffset[partition] = base + Int64(chunk.count)
                index.markInFlight(indexed, contents: submitted, places: chunk, recordedTimes: chunk.map { recordedTime[$0] }, partition: partition)
                submissions.append(Submission(partition: partition, ticket: ticket, indexed: indexed))
            }
        }
        for i in events.indices {
            if let earlier = duplicateOf[i], let original = outcomes[earlier] {
                let version: Int64 = switch original {
                case let .appended(_, v), let .duplicate(_, v): v
                }
                outcomes[i] = .duplicate(original.position, version: version)
            }
        }
        return (SubmittedAppend(index: index, submissions: submissions, outcomes: outcomes.compactMap { $0 }), queued)
    }


    /// The recorded time of each new event (µs since the epoch): the wall clock, made
    /// unique and increasing store-wide in the order events are submitted — within a call
    /// in input order, across its partitions too — so that reading the partitions merged
    /// by recorded time gives back the order of appending (RecordedOrderReader), and a
    /// clock that steps back never reorders it.
    private func recordedTimes(_ index: StoreIndex, new isNew: (Int) -> Bool) -> [Int64] {
        var times = [Int64](repeating: 0, count: events.count)
        var next = max(EventStore.wallClockMicroseconds(), index.lastRecordedTime &+ 1)
        for i in events.indices where isNew(i) {
            times[i] = next
            next += 1
        }
        precondition(next - 1 >= index.lastRecordedTime, "recorded times must not go back")
        index.lastRecordedTime = next - 1
        return times
    }
}

/// An append whose events are checked and queued for the log; `outcomes()` waits until
/// they are acknowledged. Submitting the next append before awaiting this one lets
/// compression and encoding overlap the disk flush.
public struct SubmittedAppend: Sendable {
    let index: StoreIndex
    let submissions: [AppendPlan.Submission]
    let outcomes: [AppendOutcome]

    /// Waits for every batch; moves acknowledged events into the indexes. An event whose
    /// batch failed, or a duplicate of one, gets no outcome.
    public func settled() async -> AppendSettlement {
        var firstError: EventStoreError?
        var failed: [(partition: Int, offsets: ClosedRange<Int64>)] = []
        for submission in submissions {
            do {
                do {
                    _ = try await submission.ticket.acknowledgement()
                } catch {
                    // Not acknowledged: it may never be in the log, and must not hold readers
                    // in recorded order back (RecordedOrderEnds).
                    index.lock.withLock { index.abandonInRecordedOrder(submission.indexed, partition: submission.partition) }
                    throw error
                }
                try index.lock.withLock { try index.apply(submission.indexed, partition: submission.partition) }
            } catch {
                let failure = EventStoreError.wrap(error)
                index.lock.withLock {
                    if index.failure[submission.partition] == nil { index.failure[submission.partition] = failure }
                }
                if firstError == nil { firstError = failure }
                if let first = submission.indexed.first, let last = submission.indexed.last {
                    failed.append((submission.partition, first.offset...last.offset))
                }
            }
        }
        guard firstError != nil else { return AppendSettlement(outcomes: outcomes, failure: nil) }
        let stored = outcomes.map { outcome -> AppendOutcome? in
            let position = outcome.position
            return failed.contains { $0.partition == position.partition && $0.offsets.contains(position.offset) } ? nil : outcome
        }
        return AppendSettlement(outcomes: stored, failure: firstError)
    }
}
