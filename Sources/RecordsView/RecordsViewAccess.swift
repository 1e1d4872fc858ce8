import EventLog
import EventStore
import KVStore
import OutOfStock
import Projections

/// How current an answer must be.
public enum Freshness: Sendable, Equatable {
    /// As of the log's end when the query starts (the default): events the view has not
    /// committed yet are applied first.
    case current
    /// Whatever the view has committed; the answer says how many events it leaves out.
    case staleOK
}

/// Opens the records view for queries and keeps it for the caller (the CLI opens one per
/// process; a server keeps one open).
public final class RecordsViewAccess {
    /// The view as read.
    public let view: MaintainedView<RecordsProjector>
    /// Events in the log that the answers leave out (0 unless `staleOK`).
    public let behind: Int64
    /// What happened on the way, for people (a rebuild, a catch-up).
    public let notes: [String]

    private init(view: MaintainedView<RecordsProjector>, behind: Int64, notes: [String]) {
        self.view = view
        self.behind = behind
        self.notes = notes
    }

    /// The key-value options of the records view (its keys' partitions cut its files).
    public static func options(_ base: KVOptions = KVOptions()) -> KVOptions {
        var options = base
        options.partitionPrefixLength = ViewKey.partitionLength
        return options
    }

    /// The options of a view kept beside an ingest in one process (`ViewFollower` during
    /// `append`, `LiveView` in a server): half the memtable and block cache and one frozen
    /// memtable instead of two, so that the two together stay under 300 MB
    /// (bench/RESULTS.md) — the view commits twice as often, which measured within the
    /// noise of the append's time.
    public static func followerOptions() -> KVOptions {
        var base = KVOptions()
        base.memtableBytes = 16 << 20
        base.maxFrozenMemtables = 1
        base.blockCacheBytes = 16 << 20
        return options(base)
    }

    /// The records view of `source`, current as `freshness` asks. A reader applies the
    /// log's tail after the view's checkpoint in memory; when that tail is large or the view
    /// must be rebuilt, and no other process maintains it now, this process catches it up on
    /// disk first (taking the view's lock); if another process holds the lock, it waits for
    /// it up to `lockTimeoutMilliseconds`.
    public static func open(root: String, source: any EventSource, freshness: Freshness = .current, options: KVOptions = options(),
                            storage: any Storage = PosixStorage(), lockTimeoutMilliseconds: Int = 60_000,
                            progress: (Int64, Int64) -> Void = { _, _ in }) throws -> RecordsViewAccess {
        var notes: [String] = []
        do {
            let reader = try MaintainedView<RecordsProjector>.openReader(root: root, source: source, options: options, storage: storage)
            if freshness == .staleOK { return RecordsViewAccess(view: reader, behind: try reader.eventsBehind(), notes: notes) }
            do {
                try reader.catchUp()
                return RecordsViewAccess(view: reader, behind: 0, notes: notes)
            } catch let error as ViewError {
                guard case let .tailTooLarge(events, _) = error else { throw error }
                notes.append("the view was \(events) events behind the log: caught up and saved first")
                try reader.close()
            }
        } catch let error as ViewError {
            guard case let .needsRebuild(reason) = error else { throw error }
            notes.append("the view is rebuilt from the log (\(reason))")
        }
        // Catch up on disk as the view's writer, then read what it committed.
        let writer = try MaintainedView<RecordsProjector>.openWriter(root: root, source: source, options: options, storage: storage,
                                                                     lockTimeoutMilliseconds: lockTimeoutMilliseconds)
        do {
            let total = try writer.eventsBehind()
            try writer.catchUp { progress($0, total) }
            try writer.close()
        } catch {
            try? writer.close()
            throw error
        }
        let reader = try MaintainedView<RecordsProjector>.openReader(root: root, source: source, options: options, storage: storage)
        try reader.catchUp()
        return RecordsViewAccess(view: reader, behind: 0, notes: notes)
    }

    /// The queries of one tenant.
    public func queries(tenant: String) -> RecordsQueries { RecordsQueries(snapshot: view.snapshot(), tenant: tenant) }

    /// The tenants with data.
    public func tenants() throws -> [String] { try RecordsQueries.tenants(in: view.snapshot()) }

    public func close() throws { try view.close() }

    /// Brings the view up to date with the log as its writer and commits (what `append` does
    /// after appending, and `backorder snapshot`). Returns the events applied.
    @discardableResult
    public static func update(root: String, source: any EventSource, options: KVOptions = options(), storage: any Storage = PosixStorage(),
                              lockTimeoutMilliseconds: Int = 60_000, progress: (Int64, Int64) -> Void = { _, _ in }) throws -> (applied: Int64, resetReason: String?) {
        let writer = try MaintainedView<RecordsProjector>.openWriter(root: root, source: source, options: options, storage: storage,
                                                                     lockTimeoutMilliseconds: lockTimeoutMilliseconds)
        do {
            let total = try writer.eventsBehind()
            let applied = try writer.catchUp { progress($0, total) }
            try writer.close()
            return (applied, writer.resetReason)
        } catch {
            try? writer.close()
            throw error
        }
    }
}

/// Calendar ranges of request time, in UTC (what `--today`, `--this-week`, `--this-month` mean).
public enum CalendarRange: Sendable {
    case today, thisWeek, thisMonth

    /// The range containing `now`.
    public func range(at now: Int64) -> TimeRange {
        let dayLength: Int64 = 86_400_000_000
        let day = Timestamp.daysSinceEpoch(now)
        switch self {
        case .today:
            return TimeRange(from: day * dayLength, to: (day + 1) * dayLength)
        case .thisWeek:
            // 1970-01-01 was a Thursday; weeks start on Monday.
            let weekday = ((day + 3) % 7 + 7) % 7
            return TimeRange(from: (day - weekday) * dayLength, to: (day - weekday + 7) * dayLength)
        case .thisMonth:
            let (year, month, _) = Timestamp.civilFromDays(Int(clamping: day))
            let first = Int64(Timestamp.daysFromCivil(year, month, 1))
            let next = Int64(month == 12 ? Timestamp.daysFromCivil(year + 1, 1, 1) : Timestamp.daysFromCivil(year, month + 1, 1))
            return TimeRange(from: first * dayLength, to: next * dayLength)
        }
    }
}
