#if canImport(Glibc)
import Glibc
#endif
import EventLog
import KVStore

/// A stream's events read without the store's locks, and how they were found.
public struct StreamHistory: Sendable {
    /// Every event of the stream, oldest first (empty when the stream does not exist).
    public var events: [StoredEvent]
    /// Whether the stream index gave the starting point; false when the partition was
    /// scanned (no index, or one that does not belong to this log or disagrees with it).
    public var usedIndex: Bool
    /// Events scanned past the index's coverage (0 after a clean shutdown).
    public var scannedEvents: Int64
}

extension EventReader {
    /// Every event of a stream, oldest first, read from the log while a producer may hold
    /// the store's locks (for audits).
    ///
    /// The stream index (`index/`, the key-value store opened read-only, never modified)
    /// only proposes the newest event below its coverage; the events after the coverage
    /// are scanned for a newer one. From the newest, the stream's back-links are followed
    /// to version 1, and every event read is checked to belong to the stream with the
    /// expected version, so a stale or foreign index can only cost a partition scan,
    /// never a wrong answer.
    public func readStream(tenant: String, stream: String) throws -> StreamHistory {
        let partition = self.partition(tenant: tenant, stream: stream)
        let key = EnvelopeCodec.key(tenant: tenant, stream: stream)
        let end = try endOffsets()[partition]
        if let (head, covered) = indexedHead(partition: partition, stream: StreamHash(key: key), end: end) {
            let start = max(covered, head.map { $0.offset + 1 } ?? 0)
            let (newer, scanned) = try newestOffset(of: key, partition: partition, from: start, to: end)
            if let newest = newer ?? head?.offset,
               let events = try? follow(from: newest, tenant: tenant, stream: stream, partition: partition,
                                        expectedVersion: newer == nil ? head?.version : nil) {
                return StreamHistory(events: events, usedIndex: true, scannedEvents: scanned)
            }
            if newer == nil && head == nil { return StreamHistory(events: [], usedIndex: true, scannedEvents: scanned) }
        }
        let (newest, scanned) = try newestOffset(of: key, partition: partition, from: 0, to: end)
        guard let newest else { return StreamHistory(events: [], usedIndex: false, scannedEvents: scanned) }
        let events = try follow(from: newest, tenant: tenant, stream: stream, partition: partition, expectedVersion: nil)
        return StreamHistory(events: events, usedIndex: false, scannedEvents: scanned)
    }

    /// The stream's head in the index and the offset below which the index covers the
    /// partition; nil when the index is missing, unreadable (a file a writer's compaction
    /// just removed) or does not belong to this log.
    private func indexedHead(partition: Int, stream: StreamHash, end: Int64) -> ((offset: Int64, version: Int64)?, Int64)? {
        guard log.path.hasSuffix("/log") else { return nil }
        let directory = String(log.path.dropLast(4)) + "/index"
        guard let rows = try? KVStore.open(at: directory, mode: .readOnly, options: StoreIndex.keyValueOptions(memoryBytes: 1 << 20)) else { return nil }
        defer { try? rows.close() }
        let snapshot = rows.snapshot()
        guard let coverage = IndexCoverage(decoding: snapshot.metadata), coverage.covered.count == partitionCount,
              coverage.logID == (log.manifest.logID ?? "-"), coverage.covered[partition] <= end,
              coverage.lastIDs[partition] == lastID(below: coverage.covered[partition], partition: partition) else { return nil }
        guard let row = try? IndexRow.streamKey(stream).withUnsafeBytes({ k in
            try snapshot.withValue(k) { found -> (offset: Int64, version: Int64)?? in
                guard let found else { return .some(nil) }
                // A row of the wrong size is damage: no answer (a scan), not "no such stream".
                guard let row = IndexRow.fields(found, count: IndexRow.streamFields) else { return nil }
                return .some((offset: row.0, version: row.1))
            }
        }), let head = row else { return nil }
        return (head, coverage.covered[partition])
    }

    /// The offset of the last event with record key `key` in `[from, to)`, and how many
    /// events were looked at.
    private func newestOffset(of key: [UInt8], partition: Int, from: Int64, to end: Int64) throws -> (Int64?, Int64) {
        guard from < end else { return (nil, 0) }
        var cursor = try log.cursor(partition: partition, from: from)
        var newest: Int64?
        var scanned: Int64 = 0
        while let batch = try cursor.next() {
            key.withUnsafeBytes { wanted in
                batch.forEach { record in
                    guard record.offset >= from, record.offset < end else { return }
                    scanned += 1
                    if record.key.count == wanted.count && record.key.elementsEqual(wanted) {
                        newest = record.offset
                    }
                }
            }
            if batch.nextOffset >= end { break }
        }
        return (newest, scanned)
    }

    /// Reads the stream back from its newest event along the back-links, checking that
    /// each event belongs to it and that versions step down by one to 1.
    private func follow(from newest: Int64, tenant: String, stream: String, partition: Int, expectedVersion: Int64?) throws -> [StoredEvent] {
        var events: [StoredEvent] = []
        var next: Int64? = newest
        while let offset = next {
            let event = try readEvent(at: Position(partition: partition, offset: offset))
            guard event.tenant == tenant && event.stream == stream else {
                throw EventStoreError.malformedEvent(event.position, "a link of stream \(tenant)/\(stream) points at an event of \(event.tenant)/\(event.stream)")
            }
            let expected = events.last.map { $0.streamVersion &- 1 } ?? expectedVersion ?? event.streamVersion
            guard event.streamVersion == expected else {
                throw EventStoreError.malformedEvent(event.position, "stream \(tenant)/\(stream) has version \(event.streamVersion) where \(expected) belongs")
            }
            events.append(event)
            next = event.previousOffset
        }
        guard events.last?.streamVersion == 1 else {
            throw EventStoreError.malformedEvent(Position(partition: partition, offset: newest), "stream \(tenant)/\(stream) does not start at version 1")
        }
        return events.reversed()
    }

    /// The id of the event just below `offset` ("-" at 0), as `IndexCoverage` records it.
    private func lastID(below offset: Int64, partition: Int) -> String? {
        guard offset > 0 else { return "-" }
        return (try? readEvent(at: Position(partition: partition, offset: offset - 1)))?.id.description
    }
}
