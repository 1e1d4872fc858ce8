import EventLog
import EventStore
import Projections
#if canImport(Glibc)
import Glibc
#endif

/// When the records view's snapshot is written automatically, and how a query treats a
/// view that is behind the log (docs/PROJECTIONS.md, "Snapshot policy").
///
/// A snapshot costs time in proportion to the whole view, so it is due once at least
/// `events` events arrived since the newest one *and* either the view grew by `growth`
/// (which keeps the cost per appended event bounded however large the view is) or the
/// newest snapshot is older than `seconds`.
public struct SnapshotPolicy: Sendable, Equatable {
    /// Events since the newest snapshot below which none is written.
    public var events: Int64
    /// Age of the newest snapshot (seconds) after which `events` new events suffice.
    public var seconds: Double
    /// Growth (events since the snapshot ÷ events in it) that calls for a snapshot.
    public var growth: Double
    /// A query whose table is behind catches the view up in memory when the view holds at
    /// most this many events (a few seconds at worst); a larger view answers from its
    /// table and says how far behind it is, unless the query asks to be consistent.
    public var inMemoryCatchUpLimit: Int64

    /// A policy.
    public init(events: Int64 = 10_000, seconds: Double = 300, growth: Double = 0.1, inMemoryCatchUpLimit: Int64 = 1_000_000) {
        self.events = events
        self.seconds = seconds
        self.growth = growth
        self.inMemoryCatchUpLimit = inMemoryCatchUpLimit
    }

    /// Whether a snapshot is due with `behind` events after one of a view of `viewEvents`
    /// events written `age` seconds ago (nil: there is none).
    public func isDue(behind: Int64, viewEvents: Int64, age: Double?) -> Bool {
        guard behind > 0 else { return false }
        guard let age else { return true }
        return behind >= events && (Double(behind) >= growth * Double(viewEvents) || age >= seconds)
    }
}

/// The records view's files in a data directory: its snapshots (`views/records/`) and
/// each snapshot's query tables (`<sequence>.tables/<tenant>.table`).
public struct RecordsViewFiles: Sendable {
    /// The snapshot directory.
    public let snapshots: SnapshotDirectory
    let storage: any Storage

    /// The records view's files under data directory `data`.
    public init(data: String, storage: any Storage = PosixStorage()) {
        snapshots = SnapshotDirectory(root: data + "/views", name: RecordsView.name, storage: storage)
        self.storage = storage
    }

    /// Why no current table could be used.
    public enum Miss: Error, Sendable, Equatable, CustomStringConvertible {
        /// No snapshot with tables exists (a new store, or one written by an older build).
        /// (A table that is merely behind the log is not a miss: `CurrentTable.behind`.)
        case noTables
        /// The newest tables hold nothing for this tenant.
        case noTenant
        /// The tables are damaged or do not belong to this log; the reason says why.
        case unusable(String)

        public var description: String {
            switch self {
            case .noTables: "no query tables"
            case .noTenant: "no table for the tenant"
            case let .unusable(reason): reason
            }
        }
    }

    /// A tenant's table from the newest snapshot, made from this log's history, and how
    /// far the log has moved on since.
    public struct CurrentTable {
        /// The table.
        public let table: TenantTableReader
        /// Events in the log after the table's positions (0: the table is current).
        public let behind: Int64
        /// Events the view had applied when the table was written.
        public var viewEvents: Int64 { table.metadata.positions.reduce(0, +) }
    }

    /// The tenant's table from the newest snapshot, if it was made from this log as it is
    /// now up to the table's positions (same log, the same last events), with its lag.
    public func currentTable(tenant: String, reader: any EventSource) -> Result<CurrentTable, Miss> {
        guard let newest = snapshots.list().first else { return .failure(.noTables) }
        let directory = snapshots.tablesDirectory(of: newest)
        guard storage.exists(directory) else { return .failure(.noTables) }
        guard let name = TenantTable.fileName(tenant: tenant), storage.exists(directory + "/" + name) else { return .failure(.noTenant) }
        let path = directory + "/" + name
        do {
            let table = try TenantTableReader(path: path, tenant: tenant)
            let meta = table.metadata
            guard meta.logID == (reader.sourceID ?? "") else { return .failure(.unusable("\(path): made from another log")) }
            let ends = try reader.endOffsets()
            guard let behind = Self.eventsBehind(meta.positions, ends: ends) else {
                return .failure(.unusable("\(path): it is ahead of the log"))
            }
            for (partition, position) in meta.positions.enumerated() where position > 0 {
                let last = try reader.readEvent(at: Position(partition: partition, offset: position - 1))
                guard last.id == meta.lastEventIDs[partition] else {
                    return .failure(.unusable("\(path): partition \(partition): the log's history differs from the one the table was made from"))
                }
            }
            return .success(CurrentTable(table: table, behind: behind))
        } catch {
            return .failure(.unusable("\(error)"))
        }
    }

    /// Events in the log after `positions` (nil when they do not fit the log: another
    /// partition count, or ahead of its end).
    static func eventsBehind(_ positions: [Int64], ends: [Int64]) -> Int64? {
        guard positions.count == ends.count, zip(positions, ends).allSatisfy({ $0 <= $1 }) else { return nil }
        return zip(ends, positions).map { $0 - $1 }.reduce(0, +)
    }

    /// Brings the view up to date and snapshots it if `policy` says a snapshot is due —
    /// judged from the newest snapshot's header, so nothing is loaded when none is (what
    /// `append` calls after appending). Nil when nothing was due.
    public func updateIfDue(reader: any EventSource, policy: SnapshotPolicy) throws -> CatchUpReport? {
        let ends = try reader.endOffsets()
        if let newest = snapshots.list().first, storage.exists(snapshots.tablesDirectory(of: newest)),
           let peek = SnapshotFile.peek(snapshots.path + "/" + newest, storage: storage),
           peek.logID == (reader.sourceID ?? ""), let behind = Self.eventsBehind(peek.positions, ends: ends) {
            guard policy.isDue(behind: behind, viewEvents: peek.eventsApplied, age: newestSnapshotAge()) else { return nil }
        }
        return try catchUp(reader: reader, policy: policy, force: true).1
    }

    /// What `catchUp` did.
    public struct CatchUpReport: Sendable {
        /// Loading and applying events.
        public var load: Projection.CatchUp
        /// The snapshot written, if one was.
        public var written: String?
        /// Why a snapshot could not be written (the view is still answered from memory).
        public var writeFailure: String?
    }

    /// Loads the newest valid snapshot, applies the log's tail, and writes a new snapshot
    /// with tables when `policy` says so, or `force`, or when the newest snapshot has no
    /// usable tables.
    public func catchUp(reader: any EventSource, policy: SnapshotPolicy, force: Bool = false,
                        upTo limit: [Int64]? = nil) throws -> (ProjectedView<RecordsView>, CatchUpReport) {
        let (projected, load) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots, upTo: limit)
        var report = CatchUpReport(load: load)
        guard limit == nil else { return (projected, report) }
        let due = force || load.snapshot == nil
            || policy.isDue(behind: load.events, viewEvents: projected.eventsApplied - load.events, age: newestSnapshotAge())
            || !storage.exists(snapshots.tablesDirectory(of: snapshots.list().first ?? ""))
        if due && projected.eventsApplied > 0 {
            do { report.written = try write(projected, logID: reader.sourceID, replace: force) } catch { report.writeFailure = "\(error)" }
        }
        return (projected, report)
    }

    /// Writes a snapshot of `projected` and its query tables (see `SnapshotDirectory.write`
    /// for `replace`).
    @discardableResult
    public func write(_ projected: ProjectedView<RecordsView>, logID: String?, replace: Bool = false) throws -> String {
        try snapshots.write(projected, logID: logID, replace: replace) { directory in
            try TenantTable.writeAll(projected, logID: logID, to: directory, storage: storage)
        }
    }

    /// Events in the view as of the newest snapshot (from its header), or nil.
    public func newestSnapshotEvents() -> Int64? {
        snapshots.list().first.flatMap { SnapshotFile.peek(snapshots.path + "/" + $0, storage: storage)?.eventsApplied }
    }

    /// The tenants that have a table in the newest snapshot, sorted.
    public func tenantsInNewestTables() -> [String] {
        guard let newest = snapshots.list().first else { return [] }
        let names = (try? storage.listDirectory(snapshots.tablesDirectory(of: newest))) ?? []
        return names.compactMap { TenantTable.tenant(fromFileName: $0) }.sorted()
    }

    /// Seconds since the newest snapshot was written, or nil when there is none.
    func newestSnapshotAge() -> Double? {
        guard let newest = snapshots.list().first else { return nil }
        var info = stat()
        guard stat(snapshots.path + "/" + newest, &info) == 0 else { return nil }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec - info.st_mtim.tv_sec) + Double(now.tv_nsec - info.st_mtim.tv_nsec) / 1e9
    }
}
