import EventLog
import Foundation

/// The store's state for one log partition: predicted next offset, the indexes, and the
/// events submitted to the log but not yet acknowledged ("in flight").
///
/// Everything is guarded by `lock`. An append takes the locks of all the partitions it
/// touches, in partition order, checks every event, submits every batch, and releases
/// them before it waits for the disk — so checks and submissions are atomic with respect
/// to other appends, and fsyncs of different appends overlap (group commit).
final class StorePartition: @unchecked Sendable {
    struct InFlight {
        var version: Int64
        var offset: Int64
    }

    let number: Int
    let lock = NSLock()
    /// The offset the next submitted record will get (this process is the only writer).
    var nextOffset: Int64
    var inFlightStreams: [StreamHash: InFlight] = [:]
    var inFlightIDs: [EventID: InFlight] = [:]
    var failure: EventStoreError?
    let streams: PersistentHashTable
    let ids: PersistentHashTable
    var appliedSinceCheckpoint = 0

    init(number: Int, nextOffset: Int64, streams: PersistentHashTable, ids: PersistentHashTable) {
        self.number = number
        self.nextOffset = nextOffset
        self.streams = streams
        self.ids = ids
    }

    /// The stream's current version and the offset of its last event (0 and nil when new).
    func head(of stream: StreamHash) -> InFlight? {
        if let inFlight = inFlightStreams[stream] { return inFlight }
        if let stored = streams.lookup(stream.k0, stream.k1) { return InFlight(version: stored.value, offset: stored.offset) }
        return nil
    }

    /// Where an event id is stored (or in flight), with its stream version.
    func existing(_ id: EventID) -> InFlight? {
        if let inFlight = inFlightIDs[id] { return inFlight }
        if let stored = ids.lookup(id.high, id.low) { return InFlight(version: stored.value, offset: stored.offset) }
        return nil
    }

    /// Moves acknowledged events from in flight into the indexes.
    func apply(_ events: [(id: EventID, stream: StreamHash, version: Int64, offset: Int64)]) throws {
        for event in events {
            try ids.upsert(event.id.high, event.id.low, offset: event.offset, value: event.version, onlyIfNewer: false)
            try streams.upsert(event.stream.k0, event.stream.k1, offset: event.offset, value: event.version, onlyIfNewer: true)
            if inFlightIDs[event.id]?.offset == event.offset { inFlightIDs[event.id] = nil }
            if inFlightStreams[event.stream]?.offset == event.offset { inFlightStreams[event.stream] = nil }
        }
        appliedSinceCheckpoint += events.count
        // With nothing in flight the indexes cover everything below nextOffset.
        if appliedSinceCheckpoint >= 1_000_000 && inFlightIDs.isEmpty {
            try checkpoint(clean: false)
        }
    }

    func checkpoint(clean: Bool) throws {
        try ids.checkpoint(coveredThrough: nextOffset, clean: clean)
        try streams.checkpoint(coveredThrough: nextOffset, clean: clean)
        appliedSinceCheckpoint = 0
    }
}
