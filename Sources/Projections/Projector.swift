import EventStore

/// A materialized view: how events change its state, and how its state is saved.
///
/// A projector is a value; its host actor applies batches of events to it (never one
/// actor hop per event) and keeps, beside it, the log position it has reached in every
/// partition. Snapshots save both together, so a view never claims more or less than it
/// has applied.
public protocol Projector: Sendable {
    /// The view's name: its snapshot directory and its `--view` name.
    static var name: String { get }
    /// Bumped whenever the state's meaning or encoding changes: older snapshots are then
    /// skipped and the view is rebuilt from the log.
    static var version: Int { get }
    /// The event types it needs; others are skipped before `apply` (empty: all).
    static var eventTypes: Set<String> { get }

    /// An empty view.
    init()
    /// Applies events of one partition, in offset order.
    mutating func apply(_ events: [StoredEvent]) throws
    /// The state, encoded (deterministic: equal states give equal bytes).
    func encoded() -> [UInt8]
    /// Restores a state from `encoded()`.
    init(decoding bytes: [UInt8]) throws
}

/// A view in which each partition's events change only state of their own (the streams
/// of one partition never touch the state another partition's streams touch), so that
/// partitions can be applied apart — in parallel — and the results merged.
public protocol PartitionedProjector: Projector {
    /// Adds the state of `other`, built from other partitions; a key present in both is
    /// an error (the disjointness the view promised does not hold).
    mutating func merge(_ other: Self) throws
}

/// A view's state and the positions it has applied, kept together.
public struct ProjectedView<P: Projector>: Sendable {
    /// The view.
    public internal(set) var view: P
    /// For each partition, the offset of the next event to apply.
    public internal(set) var positions: [Int64]
    /// Events applied since the view was empty.
    public internal(set) var eventsApplied: Int64
    /// For each partition, the id of the last event applied (nil: none yet). Saved with
    /// the snapshot and checked against the log on load, so that a snapshot is never
    /// applied to a log whose history differs from the one it was made from.
    public internal(set) var lastEventIDs: [EventID?]

    /// An empty view over `partitions` partitions.
    public init(partitions: Int) {
        view = P()
        positions = Array(repeating: 0, count: partitions)
        eventsApplied = 0
        lastEventIDs = Array(repeating: nil, count: partitions)
    }

    init(view: P, positions: [Int64], eventsApplied: Int64, lastEventIDs: [EventID?]) {
        self.view = view
        self.positions = positions
        self.eventsApplied = eventsApplied
        self.lastEventIDs = lastEventIDs
    }

    /// Adds a view built from other partitions (each partition applied by one of the two).
    mutating func merge(_ other: ProjectedView<P>) throws where P: PartitionedProjector {
        guard other.positions.count == positions.count else { throw ProjectionError.io("merging views of different partition counts") }
        for p in positions.indices where other.positions[p] > 0 {
            guard positions[p] == 0 else { throw ProjectionError.io("view \(P.name): partition \(p) applied by two workers") }
            positions[p] = other.positions[p]
            lastEventIDs[p] = other.lastEventIDs[p]
        }
        try view.merge(other.view)
        eventsApplied += other.eventsApplied
    }

    /// Applies one partition's batch, which must start exactly where the view stands.
    public mutating func apply(_ batch: EventBatch) throws {
        guard batch.partition < positions.count else {
            throw ProjectionError.gap(view: P.name, partition: batch.partition, expected: -1, found: batch.nextOffset)
        }
        if let first = batch.events.first, first.position.offset != positions[batch.partition] {
            throw ProjectionError.gap(view: P.name, partition: batch.partition, expected: positions[batch.partition], found: first.position.offset)
        }
        let wanted = P.eventTypes
        if wanted.isEmpty {
            try view.apply(batch.events)
        } else {
            let relevant = batch.events.filter { wanted.contains($0.type) }
            if !relevant.isEmpty { try view.apply(relevant) }
        }
        positions[batch.partition] = batch.nextOffset
        eventsApplied += Int64(batch.events.count)
        if let last = batch.events.last { lastEventIDs[batch.partition] = last.id }
    }
}

/// What can go wrong in the projection engine.
public enum ProjectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Events were delivered out of order (a bug: positions are dense per partition).
    case gap(view: String, partition: Int, expected: Int64, found: Int64)
    /// A snapshot file could not be used; the reason says why.
    case badSnapshot(path: String, reason: String)
    /// A snapshot could not be written.
    case io(String)
    /// A view's saved state does not decode.
    case malformedState(view: String, reason: String)

    public var description: String {
        switch self {
        case let .gap(view, partition, expected, found):
            "view \(view): partition \(partition) delivered offset \(found) where \(expected) was next"
        case let .badSnapshot(path, reason):
            "snapshot \(path) skipped: \(reason)"
        case let .io(message):
            message
        case let .malformedState(view, reason):
            "view \(view): saved state does not decode: \(reason)"
        }
    }
}
