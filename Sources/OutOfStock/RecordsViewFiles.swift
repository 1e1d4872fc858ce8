import EventLog
import EventStore
import Projections
#if canImport(Glibc)
import Glibc
#endif

/// When the records view's snapshot is written automatically: after `events` events were
/// applied on top of the newest snapshot, or when it is older than `seconds` and behind.
public struct SnapshotPolicy: Sendable, Equatable {
    /// Events applied since the newest snapshot that call for a new one.
    public var events: Int64
    /// Age of the newest snapshot (seconds) after which any newer event calls for a new one.
    public var seconds: Double

    /// A policy; the defaults keep snapshot writing well below 1% of ingest time.
    public init(events: Int64 = 10_000, seconds: Double = 300) {
        self.events = events
        self.seconds = seconds
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
        case noTables
        /// The newest tables hold nothing for this tenant.
        case noTenant
        /// The log has events the tables do not (appended since the snapshot).
        case behind
        /// The tables are damaged or do not belong to this log; the reason says why.
        case unusable(String)

        public var description: String {
            switch self {
            case .noTables: "no query tables"
            case .noTenant: "no table for the tenant"
            case .behind: "the view is behind the log"
            case let .unusable(reason): reason
            }
        }
    }

    /// The tenant's table from the newest snapshot, if it reflects exactly the log as it is
    /// now (same log, same end positions, same last events).
    public func currentTable(tenant: String, reader: EventReader) -> Result<TenantTableReader, Miss> {
        guard let newest = snapshots.list().first else { return .failure(.noTables) }
        let directory = snapshots.tablesDirectory(of: newest)
        guard storage.exists(directory) else { return .failure(.noTables) }
        let path = directory + "/" + TenantTable.fileName(tenant: tenant)
        guard storage.exists(path) else { return .failure(.noTenant) }
        do {
            let table = try TenantTableReader(path: path, tenant: tenant)
            let meta = table.metadata
            guard meta.logID == (reader.log.manifest.logID ?? "") else { return .failure(.unusable("\(path): made from another log")) }
            guard meta.positions == (try reader.endOffsets()) else { return .failure(.behind) }
            for (partition, position) in meta.positions.enumerated() where position > 0 {
                let last = try reader.readEvent(at: Position(partition: partition, offset: position - 1))
                guard last.id == meta.lastEventIDs[partition] else {
                    return .failure(.unusable("\(path): partition \(partition): the log's history differs from the one the table was made from"))
                }
            }
            return .success(table)
        } catch {
            return .failure(.unusable("\(error)"))
        }
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
    public func catchUp(reader: EventReader, policy: SnapshotPolicy, force: Bool = false,
                        upTo limit: [Int64]? = nil) throws -> (ProjectedView<RecordsView>, CatchUpReport) {
        let (projected, load) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots, upTo: limit)
        var report = CatchUpReport(load: load)
        guard limit == nil else { return (projected, report) }
        let age = newestSnapshotAge()
        let due = force || load.snapshot == nil || load.events >= policy.events || (load.events > 0 && (age ?? .infinity) >= policy.seconds)
            || !storage.exists(snapshots.tablesDirectory(of: snapshots.list().first ?? ""))
        if due && projected.eventsApplied > 0 {
            do { report.written = try write(projected, logID: reader.log.manifest.logID) } catch { report.writeFailure = "\(error)" }
        }
        return (projected, report)
    }

    /// Writes a snapshot of `projected` and its query tables.
    @discardableResult
    public func write(_ projected: ProjectedView<RecordsView>, logID: String?) throws -> String {
        try snapshots.write(projected, logID: logID) { directory in
            try TenantTable.writeAll(projected, logID: logID, to: directory, storage: storage)
        }
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
