import EventLog
import Foundation

/// An acknowledged event's index entries.
struct IndexedEvent: Sendable {
    let id: EventID
    let stream: StreamHash
    let version: Int64
    let offset: Int64
}

/// Where an event (stored or in flight) is: partition, offset, stream version.
struct IndexedPosition: Sendable, Equatable {
    let partition: Int
    let offset: Int64
    let version: Int64
}

/// The store's indexes and append state, under one lock (docs/EVENTS.md, "Indexes").
///
/// - Stream heads: one table per log partition, stream hash → (offset, version) of the
///   stream's last event.
/// - Event ids: one table per shard, chosen by the id's own hash, so an id is looked up
///   in exactly one table wherever its stream lives; value = partition and version.
/// - In flight: events submitted to the log but not yet acknowledged; they count for
///   checks (a duplicate or a version) but enter the tables only once acknowledged.
/// - Coverage (`index/COVERAGE`): for each partition, the log offset below which every
///   event is in the tables; whether the tables were closed cleanly; and whether every
///   entry since was acknowledged in fsync mode. A trusted coverage lets the next open
///   catch up from there; anything else rebuilds the tables from the log.
final class StoreIndex: @unchecked Sendable {
    let lock = NSLock()
    let directory: String
    private(set) var streams: [PersistentHashTable] = []
    private(set) var ids: [PersistentHashTable] = []
    /// The offset the next submitted record of each partition gets (one writer: us).
    var nextOffset: [Int64]
    var inFlightStreams: [[StreamHash: IndexedPosition]]
    var inFlightIDs: [EventID: IndexedPosition] = [:]
    var failure: [EventStoreError?]
    private var appliedSinceCheckpoint = 0
    private let fsyncOnly: Bool
    /// The log the tables index (its id and events are recorded in the coverage).
    private let reader: EventReader

    init(directory: String, log: WriteAheadLog, logEnds: [Int64], fsyncOnly: Bool) throws {
        self.reader = EventReader(log: log)
        self.directory = directory
        self.nextOffset = logEnds
        self.inFlightStreams = Array(repeating: [:], count: logEnds.count)
        self.failure = Array(repeating: nil, count: logEnds.count)
        self.fsyncOnly = fsyncOnly
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for p in logEnds.indices {
            streams.append(try PersistentHashTable(path: directory + String(format: "/streams-%04d.table", p)))
            ids.append(try PersistentHashTable(path: directory + String(format: "/event-ids-%04d.table", p)))
        }
    }

    // MARK: Lookups (caller holds the lock)

    func shard(of id: EventID) -> Int {
        Int(PersistentHashTable.mix(id.high ^ id.low.byteSwapped) % UInt64(ids.count))
    }

    /// The head of a stream: its version and the offset of its last event.
    func head(of stream: StreamHash, partition: Int) -> IndexedPosition? {
        if let inFlight = inFlightStreams[partition][stream] { return inFlight }
        guard let stored = streams[partition].lookup(stream.k0, stream.k1) else { return nil }
        return IndexedPosition(partition: partition, offset: stored.offset, version: stored.value)
    }

    /// Where an event id is stored or in flight.
    func existing(_ id: EventID) -> IndexedPosition? {
        if let inFlight = inFlightIDs[id] { return inFlight }
        guard let stored = ids[shard(of: id)].lookup(id.high, id.low) else { return nil }
        return IndexedPosition(partition: Int(stored.value >> 48), offset: stored.offset, version: stored.value & 0xFFFF_FFFF_FFFF)
    }

    // MARK: Updates (caller holds the lock)

    func markInFlight(_ events: [IndexedEvent], partition: Int) {
        for event in events {
            let position = IndexedPosition(partition: partition, offset: event.offset, version: event.version)
            inFlightIDs[event.id] = position
            inFlightStreams[partition][event.stream] = position
        }
    }

    /// Moves acknowledged events of `partition` from in flight into the tables.
    func apply(_ events: [IndexedEvent], partition: Int) throws {
        for event in events {
            try insert(event, partition: partition)
            if inFlightIDs[event.id]?.offset == event.offset { inFlightIDs[event.id] = nil }
            if inFlightStreams[partition][event.stream]?.offset == event.offset { inFlightStreams[partition][event.stream] = nil }
        }
        appliedSinceCheckpoint += events.count
        if appliedSinceCheckpoint >= 1_000_000 && inFlightIDs.isEmpty { try checkpoint(clean: false) }
    }

    private func insert(_ event: IndexedEvent, partition: Int) throws {
        // Versions and partitions are packed into one value; a stored version beyond that
        // can only come from damaged data.
        guard event.version >= 0 && event.version < 1 << 48 && partition < 1 << 15 else {
            throw EventStoreError.malformedEvent(Position(partition: partition, offset: event.offset), "stream version \(event.version) out of range")
        }
        try ids[shard(of: event.id)].upsert(event.id.high, event.id.low, offset: event.offset,
                                            value: Int64(partition) << 48 | event.version, onlyIfNewer: false)
        try streams[partition].upsert(event.stream.k0, event.stream.k1, offset: event.offset, value: event.version, onlyIfNewer: true)
    }

    // MARK: Coverage and recovery

    /// Brings the tables up to the log: from the saved coverage when it can be trusted,
    /// else from an empty table. Then records "not clean" before anything else changes.
    /// Returns why the tables were rebuilt from the log, or nil when they were trusted.
    @discardableResult
    func recover(from log: WriteAheadLog) throws -> String? {
        let ends = nextOffset
        var covered = Array(repeating: Int64(0), count: ends.count)
        var rebuilt: String?
        let coverage = Coverage.read(directory + "/COVERAGE")
        if let coverage, coverage.covered.count == ends.count,
           !(streams + ids).contains(where: \.wasCreated), coverage.logID == (log.manifest.logID ?? "-"),
           coverage.lastIDs == lastIDs(before: coverage.covered),
           coverage.clean || coverage.fsyncOnly, zip(coverage.covered, ends).allSatisfy({ $0 <= $1 }) {
            covered = coverage.covered
            if !coverage.clean { for table in streams + ids { table.recount() } }
        } else {
            let created = (streams + ids).filter(\.wasCreated).map { ($0.path as NSString).lastPathComponent }
            if let coverage {
                rebuilt = !created.isEmpty ? "index tables missing or damaged: " + created.joined(separator: ", ")
                    : coverage.covered.count != ends.count ? "index/COVERAGE is for another partition count"
                    : coverage.logID != (log.manifest.logID ?? "-") ? "index/COVERAGE belongs to another log"
                    : !(coverage.clean || coverage.fsyncOnly) ? "the last writer stopped without closing, in a durability mode other than fsync"
                    : "index/COVERAGE does not match this log's history"
            } else {
                rebuilt = "index/COVERAGE is missing or damaged"
            }
            if ends.allSatisfy({ $0 == 0 }) && coverage == nil { rebuilt = nil } // a new store
            // Say "covers nothing" on disk before emptying, so a crash in between can
            // never leave empty tables that a clean coverage vouches for.
            try Coverage(covered: covered, clean: false, fsyncOnly: false, logID: "-", lastIDs: covered.map { _ in "-" }).write(directory: directory)
            for table in streams + ids { table.reset() }
        }
        try Coverage(covered: covered, clean: false, fsyncOnly: fsyncOnly, logID: log.manifest.logID ?? "-", lastIDs: lastIDs(before: covered))
            .write(directory: directory)
        for partition in ends.indices where covered[partition] < ends[partition] {
            var cursor = try log.cursor(partition: partition, from: covered[partition])
            while let batch = try cursor.next() {
                var malformed: Int64?
                var failure: (any Error)?
                batch.forEach { record in
                    guard record.offset >= covered[partition], failure == nil else { return }
                    guard let fields = EnvelopeCodec.indexFields(record) else {
                        if malformed == nil { malformed = record.offset }
                        return
                    }
                    do { try insert(IndexedEvent(id: fields.id, stream: fields.stream, version: fields.version, offset: record.offset), partition: partition) } catch { failure = error }
                }
                if let failure { throw failure }
                if let malformed { throw EventStoreError.malformedEvent(Position(partition: partition, offset: malformed), "unreadable envelope") }
            }
        }
        try checkpoint(clean: false)
        return rebuilt
    }

    /// The ids of the events just below `positions` ("-" where a partition is empty there).
    private func lastIDs(before positions: [Int64]) -> [String] {
        positions.enumerated().map { partition, position in
            guard position > 0, let event = try? reader.readEvent(at: Position(partition: partition, offset: position - 1)) else { return "-" }
            return event.id.description
        }
    }

    /// Syncs the tables, then records what they cover. Only with nothing in flight.
    func checkpoint(clean: Bool) throws {
        guard inFlightIDs.isEmpty else { return }
        for table in streams + ids { try table.sync() }
        try Coverage(covered: nextOffset, clean: clean, fsyncOnly: fsyncOnly, logID: reader.log.manifest.logID ?? "-",
                     lastIDs: lastIDs(before: nextOffset)).write(directory: directory)
        appliedSinceCheckpoint = 0
    }
}

/// The `index/COVERAGE` file: a text line per fact, CRC-checked, replaced atomically.
/// `last` holds, per partition, the id of the event just below `covered` (or "-"), and
/// `log` the log's id: together they tie the tables to this log's history, so tables
/// built from another log (or from a history since truncated and rewritten) are rebuilt.
struct Coverage {
    var covered: [Int64]
    var clean: Bool
    var fsyncOnly: Bool
    var logID: String
    var lastIDs: [String]

    func write(directory: String) throws {
        var text = "backorder-index 1\nclean \(clean ? 1 : 0)\nfsync-only \(fsyncOnly ? 1 : 0)\ncovered \(covered.map(String.init).joined(separator: " "))\n"
        text += "log \(logID)\nlast \(lastIDs.joined(separator: " "))\n"
        text += "crc32c \(CRC32C.checksum(Array(text.utf8)))\n"
        try PosixStorage().writeAtomically(Array(text.utf8), directory: directory, name: "COVERAGE")
    }

    static func read(_ path: String) -> Coverage? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { return nil }
        var lines = text.split(separator: "\n")
        guard let last = lines.popLast(), last.hasPrefix("crc32c "),
              UInt32(last.dropFirst(7)) == CRC32C.checksum(Array(lines.map { $0 + "\n" }.joined().utf8)),
              lines.count == 6, lines[0] == "backorder-index 1", lines[3].hasPrefix("covered "), lines[4].hasPrefix("log "),
              lines[5].hasPrefix("last ") else { return nil }
        let covered = lines[3].split(separator: " ").dropFirst().compactMap { Int64($0) }
        guard covered.count == lines[3].split(separator: " ").count - 1, covered.allSatisfy({ $0 >= 0 }) else { return nil }
        let lastIDs = lines[5].split(separator: " ").dropFirst().map(String.init)
        return Coverage(covered: covered, clean: lines[1] == "clean 1", fsyncOnly: lines[2] == "fsync-only 1",
                        logID: String(lines[4].dropFirst(4)), lastIDs: lastIDs)
    }
}
