import EventLog
import Foundation

/// Where a consumer group keeps each lane's state and who delivers it: files and `flock`s
/// on one machine (`ConsumerGroup`), or a JetStream key-value bucket with leases that
/// lapse (`ClusterConsumerGroup`, for members on several machines). `GroupMember` and the
/// `groups` tools work on either through this interface.
///
/// The contract every coordinator keeps:
/// - a lane is leased to at most one member at a time; a dead member's lease ends (the
///   kernel drops a `flock`; a cluster lease lapses) and another member takes the lane;
/// - `save` replaces a lane's state durably and atomically, and only while the lease
///   taken for that lane is still this member's — a member that lost its lane cannot move
///   the new holder's checkpoint.
public protocol GroupCoordinator: AnyObject, Sendable {
    var name: String { get }
    var laneCount: Int { get }
    /// The lane's state; a lane never written starts at offset 0.
    func state(lane: Int) throws -> LaneState
    /// Replaces the state of a lane leased by this process.
    func save(_ state: LaneState) throws
    /// Takes lane `lane` for this process, or nil when a live member holds it.
    func tryLease(lane: Int) throws -> (any StorageLock)?
    /// Whether a live member holds the lane now (shown by `groups`; takes nothing).
    func isHeld(lane: Int) throws -> Bool
    /// Joins as a live member; the registration ends when the member leaves or dies.
    func join() throws -> GroupMembership
    /// Members alive now, `own` included; registrations of dead ones are removed.
    func liveMembers(own: String?) -> Int
    /// Removes the group (no member may be running).
    func delete() throws
    /// How often a member looks for lanes to take or give back (each look reads every
    /// lane's lease and every member's registration).
    var rebalanceMilliseconds: Int { get }
}

/// A member's place in a group: its id, and how it leaves.
public struct GroupMembership: Sendable {
    public let id: String
    public let leave: @Sendable () -> Void

    public init(id: String, leave: @escaping @Sendable () -> Void) {
        self.id = id
        self.leave = leave
    }

    /// A new member id: 8 lowercase hex digits.
    public static func newID() -> String { String(UUID().uuidString.prefix(8).lowercased()) }
}

/// One lane's figures.
public struct LaneStatus: Sendable {
    public let lane: Int
    public let checkpoint: Int64
    public let end: Int64
    /// Held by a live member now.
    public let held: Bool
    public let parked: [LaneState.Parked]
    public let replay: Int
    public var lag: Int64 { max(0, end - checkpoint) + Int64(replay) }
}

extension GroupCoordinator {
    public var rebalanceMilliseconds: Int { 100 }

    /// Every lane's checkpoint, lag against `ends`, holder and parked events.
    public func status(ends: [Int64]) throws -> [LaneStatus] {
        precondition(ends.count == laneCount, "\(ends.count) ends for \(laneCount) lanes")
        return try (0..<laneCount).map { lane in
            let state = try self.state(lane: lane)
            return LaneStatus(lane: lane, checkpoint: state.checkpoint, end: ends[lane], held: try isHeld(lane: lane),
                              parked: state.parked, replay: state.replay.count)
        }
    }

    /// Runs `body` with every lane leased: no member may deliver meanwhile.
    public func withAllLanes<T>(_ body: () throws -> T) throws -> T {
        var leases: [any StorageLock] = []
        defer { for lease in leases { lease.release() } }
        for lane in 0..<laneCount {
            guard let lease = try tryLease(lane: lane) else {
                throw ConsumerError("lane \(lane) of group \(name) is held by a member (on a cluster, also one stopped less than a lease ago); stop the group's consumers first")
            }
            leases.append(lease)
        }
        return try body()
    }

    /// Moves every lane's checkpoint to `positions` (parked events are kept).
    public func reset(to positions: [Int64]) throws {
        precondition(positions.count == laneCount, "\(positions.count) positions for \(laneCount) lanes")
        try withAllLanes {
            for lane in 0..<laneCount {
                var state = try self.state(lane: lane)
                state.checkpoint = positions[lane]
                state.replay = []
                try save(state)
            }
        }
    }

    /// Sends every parked event back for delivery, before the lanes' next events.
    /// Returns how many.
    @discardableResult
    public func replayParked() throws -> Int {
        try withAllLanes {
            var count = 0
            for lane in 0..<laneCount {
                var state = try self.state(lane: lane)
                guard !state.parked.isEmpty else { continue }
                state.replay = (state.replay + state.parked.map(\.offset)).sorted()
                count += state.parked.count
                state.parked = []
                try save(state)
            }
            return count
        }
    }
}
