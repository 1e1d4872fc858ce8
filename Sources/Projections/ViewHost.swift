import EventStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs one view in its own actor: batches of events go in, queries read it.
public actor ViewHost<P: Projector> {
    /// The view and its positions.
    public private(set) var projected: ProjectedView<P>

    /// A host starting from `projected` (a loaded snapshot or an empty view).
    public init(_ projected: ProjectedView<P>) { self.projected = projected }

    /// Applies a batch (the positions say where it must start).
    public func apply(_ batch: EventBatch) throws { try projected.apply(batch) }

    /// Reads the view.
    public func read<R: Sendable>(_ body: @Sendable (P) throws -> R) rethrows -> R { try body(projected.view) }
}

/// Brings views up to date with a store's log, loads and saves their snapshots, and
/// rebuilds them (docs/PROJECTIONS.md).
public enum Projection {
    /// What bringing a view up to date did.
    public struct CatchUp: Sendable {
        /// Events applied now.
        public var events: Int64 = 0
        /// Where the view started: a snapshot's path, or nil for an empty view.
        public var snapshot: String?
        /// Snapshots that were skipped, with why.
        public var skipped: [ProjectionError] = []
        /// Whether the view reached the end of the log.
        public var current = false
    }

    /// Loads the newest valid snapshot of a view (or starts empty), then applies every
    /// event after its positions, up to the log's end (or `limit` positions).
    public static func load<P: Projector>(_ type: P.Type, reader: any EventSource, snapshots: SnapshotDirectory,
                                          upTo limit: [Int64]? = nil) throws -> (ProjectedView<P>, CatchUp) {
        var report = CatchUp()
        let (loaded, path, skipped) = snapshots.loadNewest(type, partitions: reader.partitionCount, logID: reader.sourceID)
        report.skipped = skipped
        let ends = try reader.endOffsets()
        var projected = ProjectedView<P>(partitions: reader.partitionCount)
        if let loaded, let path {
            if !zip(loaded.positions, limit ?? ends).allSatisfy({ $0 <= $1 }) {
                report.skipped.append(.badSnapshot(path: path, reason: "it is ahead of the requested position (or of the log); rebuilding"))
            } else if let mismatch = try firstMismatch(loaded, reader) {
                report.skipped.append(.badSnapshot(path: path, reason: "partition \(mismatch): the log's history differs from the one the snapshot was made from; rebuilding"))
            } else {
                projected = loaded
                report.snapshot = path
            }
        }
        report.events = try catchUp(&projected, reader: reader, upTo: limit ?? ends)
        report.current = projected.positions == ends
        return (projected, report)
    }

    /// The first partition whose event just before the snapshot's position is not the one
    /// the snapshot applied last (the log was truncated and written again, or replaced).
    static func firstMismatch<P: Projector>(_ projected: ProjectedView<P>, _ reader: any EventSource) throws -> Int? {
        for (partition, position) in projected.positions.enumerated() where position > 0 {
            let event = try? reader.readEvent(at: Position(partition: partition, offset: position - 1))
            if event == nil || event?.id != projected.lastEventIDs[partition] { return partition }
        }
        return nil
    }

    /// Applies events from the view's positions up to `limit` (per partition).
    public static func catchUp<P: Projector>(_ projected: inout ProjectedView<P>, reader: any EventSource, upTo limit: [Int64]) throws -> Int64 {
        var applied: Int64 = 0
        for partition in 0..<reader.partitionCount where projected.positions[partition] < limit[partition] {
            var cursor = try reader.events(partition: partition, from: projected.positions[partition])
            while projected.positions[partition] < limit[partition], let events = try cursor.next() {
                let kept = events.prefix { $0.position.offset < limit[partition] }
                let next = kept.last.map { $0.position.offset + 1 } ?? projected.positions[partition]
                try projected.apply(EventBatch(partition: partition, events: Array(kept), nextOffset: next))
                applied += Int64(kept.count)
            }
        }
        return applied
    }

    /// Rebuilds a view from the whole log and returns it; the caller saves it as the
    /// newest snapshot (the atomic swap: readers see the old snapshot until the rename).
    /// The next chunk of batches is read, checksummed, decompressed and decoded on
    /// another task while the current one is applied, so both cores work.
    public static func rebuild<P: Projector>(_ type: P.Type, reader: any EventSource, upTo limit: [Int64]? = nil,
                                             progress: (Int64) -> Void = { _ in }) async throws -> ProjectedView<P> {
        let ends = try limit ?? reader.endOffsets()
        var projected = ProjectedView<P>(partitions: reader.partitionCount)
        for partition in 0..<reader.partitionCount where ends[partition] > 0 {
            let end = ends[partition]
            var reading = Task.detached { try readChunk(ChunkReader(cursor: try reader.events(partition: partition, from: 0), partition: partition, end: end)) }
            while true {
                let (chunk, rest) = try await reading.value
                guard !chunk.isEmpty else { break }
                reading = Task.detached { try readChunk(rest) }
                for batch in chunk { try projected.apply(batch) }
                progress(projected.eventsApplied)
            }
        }
        return projected
    }

    /// Rebuilds a view whose partitions touch disjoint state on `workers` tasks at once
    /// (default: one per processor), each applying its share of the partitions to a view
    /// of its own; the views are merged at the end. The result is the same view as a
    /// sequential rebuild (the tests compare the encoded bytes). `progress` is called on
    /// the caller's task, about ten times a second.
    public static func rebuild<P: PartitionedProjector>(_ type: P.Type, reader: any EventSource, upTo limit: [Int64]? = nil,
                                                        workers: Int = processorCount,
                                                        progress: (Int64) -> Void = { _ in }) async throws -> ProjectedView<P> {
        let ends = try limit ?? reader.endOffsets()
        let count = max(1, min(workers, reader.partitionCount))
        let tally = RebuildTally()
        let tasks = (0..<count).map { worker in
            Task.detached { () throws -> ProjectedView<P> in
                defer { tally.finished.add(1, ordering: .releasing) }
                do {
                    var projected = ProjectedView<P>(partitions: reader.partitionCount)
                    for partition in stride(from: worker, to: reader.partitionCount, by: count) where ends[partition] > 0 {
                        var state = ChunkReader(cursor: try reader.events(partition: partition, from: 0), partition: partition, end: ends[partition])
                        while true {
                            // Stop early when the caller gave up or another worker failed.
                            guard !Task.isCancelled && !tally.failed.load(ordering: .relaxed) else { throw CancellationError() }
                            let (chunk, rest) = try readChunk(state)
                            state = rest
                            guard !chunk.isEmpty else { break }
                            for batch in chunk {
                                try projected.apply(batch)
                                tally.applied.add(Int64(batch.events.count), ordering: .relaxed)
                            }
                        }
                    }
                    return projected
                } catch {
                    tally.failed.store(true, ordering: .relaxed)
                    throw error
                }
            }
        }
        do {
            while tally.finished.load(ordering: .acquiring) < count {
                progress(tally.applied.load(ordering: .relaxed))
                try await Task.sleep(for: .milliseconds(100))
            }
            // The first real error, not the cancellations it caused in the other workers.
            var results: [ProjectedView<P>] = [], failure: (any Error)?
            for task in tasks {
                do { results.append(try await task.value) } catch is CancellationError {
                    if failure == nil { failure = CancellationError() }
                } catch {
                    if failure == nil || failure is CancellationError { failure = error }
                }
            }
            if let failure { throw failure }
            var result = results[0]
            for other in results.dropFirst() { try result.merge(other) }
            progress(result.eventsApplied)
            return result
        } catch {
            for task in tasks { task.cancel() }
            throw error
        }
    }

    /// Processors online (at least 1).
    public static var processorCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    struct ChunkReader: Sendable {
        var cursor: EventCursor
        let partition: Int
        let end: Int64
        var next: Int64 = 0

        init(cursor: EventCursor, partition: Int, end: Int64) {
            self.cursor = cursor
            self.partition = partition
            self.end = end
        }
    }

    /// Up to 64 batches of a partition, cut at the end position.
    static func readChunk(_ state: ChunkReader) throws -> ([EventBatch], ChunkReader) {
        var state = state
        var chunk: [EventBatch] = []
        while chunk.count < 64, state.next < state.end, let events = try state.cursor.next() {
            let kept = events.prefix { $0.position.offset < state.end }
            guard let last = kept.last else { break }
            state.next = last.position.offset + 1
            chunk.append(EventBatch(partition: state.partition, events: Array(kept), nextOffset: state.next))
        }
        return (chunk, state)
    }
}

/// Counters shared by the workers of a parallel rebuild.
final class RebuildTally: Sendable {
    let applied = Atomic<Int64>(0)
    let finished = Atomic<Int>(0)
    let failed = Atomic<Bool>(false)
}
