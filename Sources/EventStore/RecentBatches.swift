import EventLog
import Foundation

/// The last few batches the store read for single events: a resend's original, a
/// stream's earlier events. Such reads come in runs over neighbouring events (a file sent
/// again, a stream's back-links), and each would otherwise read, checksum and decompress
/// its whole batch again. Acknowledged batches never change, so a kept batch stays true.
/// Inputs interleave partitions, so the cache holds several batches, least recently used
/// dropped first. Memory: at most `capacityBytes` of decompressed batches, or one batch
/// (at most the store's batch limit, 8 MiB) when a single batch is larger.
final class RecentBatches: @unchecked Sendable {
    private let lock = NSLock()
    private let capacityBytes: Int
    /// Most recently used last.
    private var batches: [(partition: Int, batch: RecordBatch, starts: [Int32])] = []
    private var bytes = 0

    init(capacityBytes: Int = 16 << 20) {
        precondition(capacityBytes >= 1, "a batch cache of \(capacityBytes) bytes")
        self.capacityBytes = capacityBytes
    }

    /// The event at `position`, from a kept batch or from `read` (whose batch is kept).
    func event(at position: Position, read: (Position) throws -> RecordBatch) throws -> StoredEvent {
        let kept: (batch: RecordBatch, starts: [Int32])? = lock.withLock {
            guard let i = batches.lastIndex(where: { $0.partition == position.partition && $0.batch.baseOffset <= position.offset
                && position.offset < $0.batch.nextOffset }) else { return nil }
            let hit = batches.remove(at: i)
            batches.append(hit)
            return (hit.batch, hit.starts)
        }
        if let kept { return try Self.event(at: position, in: kept.batch, starts: kept.starts) }
        let batch = try read(position)
        let starts = batch.recordStarts()
        lock.withLock {
            batches.append((position.partition, batch, starts))
            bytes += batch.header.uncompressedLength
            while bytes > capacityBytes && batches.count > 1 { bytes -= batches.removeFirst().batch.header.uncompressedLength }
        }
        return try Self.event(at: position, in: batch, starts: starts)
    }

    private static func event(at position: Position, in batch: RecordBatch, starts: [Int32]) throws -> StoredEvent {
        let event = try batch.withRecord(at: position.offset, starts: starts) { try EnvelopeCodec.decode($0, partition: position.partition) }
        guard let event else { throw EventStoreError.invalidArgument("no event at \(position)") }
        return event
    }
}
