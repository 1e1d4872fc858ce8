#if canImport(Glibc)
import Glibc
#endif
import EventLog

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
    /// The stream index (`index/streams-NNNN.table`, opened read-only, never modified)
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
    /// partition; nil when the index is missing or does not belong to this log.
    private func indexedHead(partition: Int, stream: StreamHash, end: Int64) -> ((offset: Int64, version: Int64)?, Int64)? {
        guard log.path.hasSuffix("/log") else { return nil }
        let index = String(log.path.dropLast(4)) + "/index"
        guard let coverage = Coverage.read(index + "/COVERAGE"), coverage.covered.count == partitionCount,
              coverage.logID == (log.manifest.logID ?? "-"), coverage.clean || coverage.fsyncOnly,
              coverage.covered[partition] <= end, coverage.lastIDs.count == partitionCount,
              coverage.lastIDs[partition] == lastID(below: coverage.covered[partition], partition: partition),
              let found = ReadOnlyTable.lookup(path: index + "/streams-" + fourDigits(partition) + ".table", stream.k0, stream.k1)
        else { return nil }
        return (found.map { (offset: $0.offset, version: $0.value) }, coverage.covered[partition])
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

    /// The id of the event just below `offset` ("-" at 0), as `Coverage` records it.
    private func lastID(below offset: Int64, partition: Int) -> String? {
        guard offset > 0 else { return "-" }
        return (try? readEvent(at: Position(partition: partition, offset: offset - 1)))?.id.description
    }

    private func fourDigits(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// Lookups in a stream-head table file without mapping or changing it: a few `pread`s
/// of the slots a key probes (the layout of `PersistentHashTable`).
enum ReadOnlyTable {
    /// nil when the file is missing or its header is invalid; `.some(nil)` when the key is absent.
    static func lookup(path: String, _ k0: UInt64, _ k1: UInt64) -> (offset: Int64, value: Int64)?? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var raw = [UInt8](repeating: 0, count: 64)
        guard raw.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 64, 0) }) == 64,
              let header = PersistentHashTable.parseHeader(raw) else { return nil }
        let mask = header.capacity - 1
        var slot = Int(truncatingIfNeeded: PersistentHashTable.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
        var bytes = [UInt8](repeating: 0, count: PersistentHashTable.slotBytes)
        for _ in 0..<header.capacity {
            let at = off_t(PersistentHashTable.headerBytes + slot * PersistentHashTable.slotBytes)
            guard bytes.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, PersistentHashTable.slotBytes, at) }) == PersistentHashTable.slotBytes else { return nil }
            let (key0, key1, stored, value) = bytes.withUnsafeBytes { p in
                (p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 p.loadUnaligned(fromByteOffset: 16, as: Int64.self), p.loadUnaligned(fromByteOffset: 24, as: Int64.self))
            }
            if stored == 0 { return .some(nil) }
            if key0 == k0 && key1 == k1 { return .some((stored - 1, value)) }
            slot = (slot + 1) & mask
        }
        return .some(nil)
    }
}
