import EventLog
import EventStore
import Foundation

/// How a member delivers.
public struct MemberOptions: Sendable {
    /// Events per delivered batch; a member has one batch in flight at a time, so this is
    /// also the most events delivered and not yet acknowledged (`--max-in-flight`).
    public var maxInFlight = 1_000
    /// Deliveries of an event before it is parked (`--max-deliver`). A batch that fails
    /// this often is delivered again one event at a time, so only the failing event parks.
    public var maxDeliver = 5
    /// Events to deliver; the others are passed over (acknowledged without delivery).
    public var filter: (@Sendable (StoredEvent) -> Bool)?

    public init() {}
}

/// A batch handed to the consumer: events of one lane, in offset order.
public struct Delivery: Sendable {
    public let lane: Int
    /// The events to process (those the filter keeps).
    public let events: [StoredEvent]
    /// The lane offsets the batch settles when acknowledged (filtered-out events included).
    public let range: Range<Int64>
    /// A parked event sent back by `groups replay-parked`.
    public let isReplay: Bool
    /// 1 for the first delivery, then 2, 3, …
    public let attempt: Int
}

/// One member of a consumer group (docs/CONSUMERS.md, "Consumer groups"): it leases its
/// share of the lanes, hands out one batch at a time, and moves a lane's checkpoint only
/// when that batch is acknowledged — never past an event that is not acknowledged or
/// parked. Not thread-safe: one task drives it.
public final class GroupMember {
    /// What to do after a failed delivery.
    public enum AfterFailure: Equatable, Sendable {
        /// Deliver again (`next()` returns it) after waiting this long.
        case retry(afterMilliseconds: Int)
        /// Given up: these offsets are parked; the lane goes on.
        case parked([Int64])
    }

    public let group: any GroupCoordinator
    public let memberID: String
    private let source: any EventSource
    private let options: MemberOptions
    private let membership: GroupMembership

    private struct Held {
        let lease: any StorageLock
        var state: LaneState
        var cursor: EventCursor?
        var buffer: [StoredEvent] = []
        var bufferAt = 0
        /// Below this offset events go one per batch (a batch there failed `maxDeliver` times).
        var singlesUntil: Int64 = 0
        /// The checkpoint moved past filtered-out events only, not saved yet: saved with the
        /// next acknowledgement or failure, when the lane is let go, or at close. (Saving at
        /// once cost two fsyncs each time another tenant appended; losing it costs a second
        /// pass over events the filter drops again.)
        var unsaved = false
    }
    private var held: [Int: Held] = [:]
    private var pending: Delivery?
    private var nextLane = 0
    private var lastRebalance: ContinuousClock.Instant?
    private var closed = false

    /// Joins the group. Lanes are taken by `rebalance()` (and by `next`, at most every
    /// `group.rebalanceMilliseconds`).
    public init(group: any GroupCoordinator, source: any EventSource, options: MemberOptions) throws {
        precondition(options.maxInFlight >= 1 && options.maxDeliver >= 1, "a member needs maxInFlight and maxDeliver ≥ 1")
        guard source.partitionCount == group.laneCount else {
            throw ConsumerError("group \(group.name) has \(group.laneCount) lanes, the store \(source.partitionCount)")
        }
        self.group = group
        self.source = source
        self.options = options
        self.membership = try group.join()
        self.memberID = membership.id
    }

    deinit { close() }

    /// The batch delivered and not yet acknowledged or failed, if any.
    public var inFlight: Delivery? { pending }

    /// The lanes this member holds now.
    public var lanes: [Int] { held.keys.sorted() }

    /// Lets go of every lane and leaves the group (its member file removed).
    public func close() {
        guard !closed else { return }
        closed = true
        for (_, lane) in held {
            if lane.unsaved { try? group.save(lane.state) }
            lane.lease.release()
        }
        held = [:]
        membership.leave()
    }

    /// Takes free lanes up to this member's fair share (lanes ÷ live members, rounded up)
    /// and lets go of lanes beyond it, so that members share the lanes and a dead member's
    /// lanes are taken over. A lane with a batch in flight is kept until it settles.
    public func rebalance() throws {
        lastRebalance = .now
        let live = max(1, group.liveMembers(own: memberID))
        let share = (group.laneCount + live - 1) / live
        for lane in held.keys.sorted(by: >) where held.count > share && pending?.lane != lane {
            guard let released = held.removeValue(forKey: lane) else { continue }
            if released.unsaved { try? group.save(released.state) }  // else the next holder passes over them again
            released.lease.release()
        }
        var lane = 0
        while held.count < share && lane < group.laneCount {
            if held[lane] == nil, let lease = try group.tryLease(lane: lane) {
                do {
                    // Read after the lease: the last holder's final checkpoint is in it.
                    held[lane] = Held(lease: lease, state: try group.state(lane: lane))
                } catch {
                    lease.release()
                    throw error
                }
            }
            lane += 1
        }
    }

    /// The next batch from this member's lanes with events below `ends`, or nil when there
    /// is none now. A batch whose delivery failed comes back first.
    public func next(ends: [Int64]) throws -> Delivery? {
        precondition(ends.count == group.laneCount, "\(ends.count) ends for \(group.laneCount) lanes")
        if let pending { return pending }
        if lastRebalance.map({ ContinuousClock.now - $0 >= .milliseconds(group.rebalanceMilliseconds) }) ?? true { try rebalance() }
        let lanes = self.lanes
        guard !lanes.isEmpty else { return nil }
        for k in 0..<lanes.count {
            let lane = lanes[(nextLane + k) % lanes.count]
            if let delivery = try take(lane: lane, end: ends[lane]) {
                nextLane = (nextLane + k + 1) % lanes.count
                pending = delivery
                return delivery
            }
        }
        return nil
    }

    /// The events of `delivery` are processed: the lane's checkpoint moves past them.
    public func acknowledge(_ delivery: Delivery) throws {
        precondition(pending.map { $0.lane == delivery.lane && $0.range == delivery.range } ?? false, "acknowledging a batch that is not in flight")
        guard var lane = held[delivery.lane] else { preconditionFailure("lane \(delivery.lane) released with a batch in flight") }
        if delivery.isReplay {
            lane.state.replay.removeAll { $0 == delivery.range.lowerBound }
        } else {
            precondition(lane.state.checkpoint == delivery.range.lowerBound, "checkpoint \(lane.state.checkpoint), batch from \(delivery.range.lowerBound)")
            lane.state.checkpoint = delivery.range.upperBound
        }
        try group.save(lane.state)
        lane.unsaved = false
        held[delivery.lane] = lane
        pending = nil
    }

    /// The delivery of `delivery` failed (`reason` is kept with a parked event).
    public func failed(_ delivery: Delivery, reason: String) throws -> AfterFailure {
        precondition(pending.map { $0.lane == delivery.lane && $0.range == delivery.range } ?? false, "failing a batch that is not in flight")
        if delivery.attempt < options.maxDeliver {
            pending = Delivery(lane: delivery.lane, events: delivery.events, range: delivery.range, isReplay: delivery.isReplay, attempt: delivery.attempt + 1)
            return .retry(afterMilliseconds: min(5_000, 100 << min(delivery.attempt - 1, 6)))
        }
        guard var lane = held[delivery.lane] else { preconditionFailure("lane \(delivery.lane) released with a batch in flight") }
        pending = nil
        if delivery.events.count > 1 {
            // Find the event that fails: the range again, one event per batch.
            lane.singlesUntil = delivery.range.upperBound
            lane.buffer = []
            lane.bufferAt = 0
            lane.cursor = nil
            held[delivery.lane] = lane
            nextLane = lanes.firstIndex(of: delivery.lane) ?? nextLane  // that lane next
            return .retry(afterMilliseconds: 0)
        }
        guard lane.state.parked.count < LaneState.maxParked else {
            throw ConsumerError("lane \(delivery.lane) of group \(group.name) has \(LaneState.maxParked) parked events; replay or reset them before going on")
        }
        let offsets = delivery.events.map(\.position.offset)
        for offset in offsets {
            lane.state.parked.append(LaneState.Parked(offset: offset, deliveries: delivery.attempt, reason: String(reason.prefix(500))))
        }
        if delivery.isReplay {
            lane.state.replay.removeAll { $0 == delivery.range.lowerBound }
        } else {
            lane.state.checkpoint = delivery.range.upperBound
        }
        try group.save(lane.state)
        lane.unsaved = false
        held[delivery.lane] = lane
        return .parked(offsets)
    }

    /// A batch from one lane: a replayed event first, else up to `maxInFlight` events from
    /// the checkpoint. A stretch of filtered-out events is settled without a delivery.
    private func take(lane number: Int, end: Int64) throws -> Delivery? {
        guard var lane = held[number] else { return nil }
        defer { held[number] = lane }
        if let offset = lane.state.replay.first {
            let event = try source.readEvent(at: Position(partition: number, offset: offset))
            return Delivery(lane: number, events: [event], range: offset..<(offset + 1), isReplay: true, attempt: 1)
        }
        let start = lane.state.checkpoint
        let limit = start < lane.singlesUntil ? 1 : options.maxInFlight
        var events: [StoredEvent] = []
        var scanned = start
        while scanned < end && events.count < limit {
            if lane.bufferAt == lane.buffer.count {
                if lane.cursor == nil { lane.cursor = try source.events(partition: number, from: scanned) }
                guard let batch = try lane.cursor!.next(), !batch.isEmpty else {
                    // Events up to `end` exist: a cursor that stops short of them (a JetStream
                    // consumer read up to the end known when it was made) is made again at
                    // the next look.
                    lane.cursor = nil
                    break
                }
                lane.buffer = batch
                lane.bufferAt = 0
            }
            // The buffer goes on from `scanned` (events before it were taken or passed over).
            let event = lane.buffer[lane.bufferAt]
            lane.bufferAt += 1
            guard event.position.offset >= scanned else { continue }
            precondition(event.position.offset == scanned || !source.offsetsAreDense, "lane \(number): event at \(event.position.offset) where \(scanned) belongs")
            scanned = event.position.offset + 1
            if options.filter?(event) ?? true { events.append(event) }
        }
        guard scanned > start else { return nil }
        if events.isEmpty {
            // Only passed-over events: settled without a delivery, saved later.
            lane.state.checkpoint = scanned
            lane.unsaved = true
            return nil
        }
        return Delivery(lane: number, events: events, range: start..<scanned, isReplay: false, attempt: 1)
    }
}
