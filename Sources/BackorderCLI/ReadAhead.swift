import EventStore
import Foundation

/// `read`'s second core: a thread reads the log, merges the partitions and decodes events
/// (`RecordedOrderReader`), keeping the events a filter lets through, while the caller
/// writes them as JSON. Chunks of up to 1,024 events pass through a queue of 4, so memory
/// stays bounded; each chunk carries the partitions' positions after it, so that a caller
/// that stops part way (`--limit`) still knows where to resume.
final class ReadAhead: @unchecked Sendable {
    struct Chunk {
        var events: [StoredEvent]
        /// The lane each event was read in.
        var lanes: [Int]
        /// Each partition's position after the events of this chunk and those filtered out before them.
        var positions: [Int64]
    }

    private let condition = NSCondition()
    private var chunks: [Chunk] = []
    private var finished = false
    private var stopped = false
    private var failure: (any Error)?
    private var reader: RecordedOrderReader
    /// Events read (filtered ones included), for the summary.
    private(set) var scanned = 0

    init(_ reader: RecordedOrderReader, keep: @escaping @Sendable (StoredEvent) -> Bool) {
        self.reader = reader
        let thread = Thread { [self] in self.run(keep) }
        thread.name = "read-ahead"
        thread.start()
    }

    private func run(_ keep: (StoredEvent) -> Bool) {
        var chunk = Chunk(events: [], lanes: [], positions: reader.positions)
        do {
            var open = true
            while open, let (lane, event) = try reader.nextWithLane() {
                scanned += 1
                if keep(event) {
                    chunk.events.append(event)
                    chunk.lanes.append(lane)
                }
                if chunk.events.count == 1_024 || scanned % 8_192 == 0 {
                    chunk.positions = reader.positions
                    open = put(chunk)
                    chunk = Chunk(events: [], lanes: [], positions: reader.positions)
                }
            }
            if open {
                chunk.positions = reader.positions
                _ = put(chunk)
            }
        } catch {
            condition.withLock { failure = error }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// Queues a chunk, waiting for room; false once the consumer has stopped.
    private func put(_ chunk: Chunk) -> Bool {
        condition.withLock {
            while chunks.count >= 4 && !stopped { condition.wait() }
            guard !stopped else { return false }
            chunks.append(chunk)
            condition.broadcast()
            return true
        }
    }

    /// The next chunk, or nil when the reader reached its ends; throws what the reader threw.
    func next() throws -> Chunk? {
        try condition.withLock {
            while chunks.isEmpty && !finished { condition.wait() }
            if !chunks.isEmpty {
                condition.broadcast()
                return chunks.removeFirst()
            }
            if let failure { throw failure }
            return nil
        }
    }

    /// Stops the thread (a consumer that has what it wants) and waits until it has, then
    /// hands back the reader (its positions are where the thread stopped reading).
    func finish() -> RecordedOrderReader {
        condition.withLock {
            stopped = true
            condition.broadcast()
            while !finished { condition.wait() }
        }
        return reader
    }
}
