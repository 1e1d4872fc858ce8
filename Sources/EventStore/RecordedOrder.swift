/// Reads the lanes of an event source as one sequence, in the order the events were
/// appended: each lane in offset order, and across lanes by recorded time, which the
/// embedded store makes unique and increasing in the order of appending (AppendPlan), so
/// an event comes after every event appended before it — a report after its customer's
/// registration. (Stores written before that gave one time to all events of an append
/// call; among those, business time, then the lane, decide.) A JetStream source has one
/// lane. Memory: one decoded batch per lane.
///
/// `positions` is where each lane stands (the offset after the last event returned): a
/// resume point. `extend(to:)` moves the ends, so a follower reads on from where it was
/// (after `EventReader.refresh()` on the embedded log).
public struct RecordedOrderReader: Sendable {
    private let source: any EventSource
    private var cursors: [EventCursor?]
    private var buffers: [[StoredEvent]]
    private var nextIndex: [Int]
    /// Per lane, the offset after the last event returned.
    public private(set) var positions: [Int64]
    /// Per lane, the offset to stop before.
    public private(set) var ends: [Int64]

    /// Reads lane `p` from `from[p]` up to `to[p]` (exclusive).
    public init(source: any EventSource, from: [Int64], to: [Int64]) throws {
        guard from.count == source.partitionCount, to.count == source.partitionCount else {
            throw EventStoreError.invalidArgument("the source has \(source.partitionCount) lanes; got \(from.count) start and \(to.count) end offsets")
        }
        self.source = source
        self.positions = from
        self.ends = zip(from, to).map { max($0, $1) }
        self.cursors = Array(repeating: nil, count: from.count)
        self.buffers = Array(repeating: [], count: from.count)
        self.nextIndex = Array(repeating: 0, count: from.count)
    }

    /// Lets every lane read on to `newEnds` (never below where it stands).
    public mutating func extend(to newEnds: [Int64]) {
        precondition(newEnds.count == ends.count, "\(newEnds.count) ends for \(ends.count) lanes")
        ends = zip(ends, newEnds).map { max($0, $1) }
    }

    /// The next event, or nil when every lane is at its end.
    public mutating func next() throws -> StoredEvent? { try nextWithLane()?.event }

    /// The next event and the lane it was read in (on JetStream, one lane holds every
    /// partition's events: the lane is not the event's `position.partition`).
    public mutating func nextWithLane() throws -> (lane: Int, event: StoredEvent)? {
        var best: Int?
        for lane in 0..<buffers.count {
            guard try fill(lane) else { continue }
            if let b = best, !Self.precedes(buffers[lane][nextIndex[lane]], buffers[b][nextIndex[b]]) { continue }
            best = lane
        }
        guard let lane = best else { return nil }
        let event = buffers[lane][nextIndex[lane]]
        nextIndex[lane] += 1
        positions[lane] = event.position.offset + 1
        return (lane, event)
    }

    /// Whether `a` comes before `b` of another lane.
    private static func precedes(_ a: StoredEvent, _ b: StoredEvent) -> Bool {
        (a.recordedTime, a.businessTime) < (b.recordedTime, b.businessTime)
    }

    /// Makes the lane's next event available; false when the lane is at its end.
    private mutating func fill(_ lane: Int) throws -> Bool {
        while nextIndex[lane] >= buffers[lane].count || buffers[lane][nextIndex[lane]].position.offset < positions[lane] {
            if nextIndex[lane] < buffers[lane].count { nextIndex[lane] += 1; continue }
            guard positions[lane] < ends[lane] else { return false }
            if cursors[lane] == nil { cursors[lane] = try source.events(partition: lane, from: positions[lane]) }
            guard let batch = try cursors[lane]!.next(), !batch.isEmpty else { return false }
            buffers[lane] = batch
            nextIndex[lane] = 0
        }
        if buffers[lane][nextIndex[lane]].position.offset >= ends[lane] { return false }
        return true
    }
}
