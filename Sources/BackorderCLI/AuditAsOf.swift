import ArgumentParser
import EventLog
import EventStore
import Foundation
import OutOfStock
import Projections
import RecordsView

/// `backorder audit as-of TIME query …`: a query answered as it would have been at TIME.
struct AuditAsOf: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "as-of",
        abstract: "Answer a query as it would have been answered at TIME: the view is replayed (from the newest older snapshot) up to the events recorded by then.",
        discussion: "Examples: `audit as-of 2026-11-22T09:00:00Z query dashboard`, `audit as-of 2026-11-22 query customer C-000042`. Output is the JSON of `query … --json`.")
    @Argument(help: "The moment (RFC 3339 or YYYY-MM-DD, UTC): events recorded (appended) at or before it count.") var time: String
    @Argument(help: "query dashboard | records | customer ID | product ID | record ID | insights (\"query\" is optional).") var words: [String]
    @OptionGroup var data: DataOptions
    @Option(help: "Tenant.") var tenant = "default"
    @Option(help: "Page size of records and customer.") var limit = 50
    @Option(help: "Insights: region, product or customer.") var by = "region"

    func run() async throws {
        let moment = try parseTime(time, "TIME")
        let query = words.first == "query" ? Array(words.dropFirst()) : words
        guard let kind = query.first else { throw ValidationError("say which query: dashboard, records, customer ID, product ID, record ID or insights") }
        let id = query.dropFirst().first
        if ["customer", "product", "record"].contains(kind) && id == nil { throw ValidationError("\(kind) needs an id") }
        guard ["dashboard", "records", "customer", "product", "record", "insights"].contains(kind) else {
            throw ValidationError("unknown query \(kind): use dashboard, records, customer ID, product ID, record ID or insights")
        }
        guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000") }
        try await runQuery {
            let source = try await data.openSource()
            let positions = try positionsRecorded(by: moment, source)
            let start = MonotonicTime.now
            let view = try scratchView(data, source, upTo: positions)
            defer { try? view.discardScratch() }
            printError("as of \(Timestamp.format(moment)): positions \(positions), \(view.checkpoint.eventsApplied) events replayed in "
                + String(format: "%.3f s", MonotonicTime.now.seconds(since: start)))
            let queries = RecordsQueries(snapshot: view.snapshot(), tenant: tenant)
            guard try queries.tenantExists() else {
                throw QueryError(description: "tenant \(tenant) had no data at \(Timestamp.format(moment))")
            }
            switch kind {
            case "dashboard":
                try printJSON(queries.dashboard(range: TimeRange(), now: moment))
            case "records":
                var filter = RecordFilter()
                filter.limit = limit
                try printJSON(queries.records(filter))
            case "customer":
                try printJSON(queries.customer(id ?? "", limit: limit))
            case "product":
                try printJSON(queries.product(id ?? ""))
            case "record":
                guard let row = try queries.record(id ?? "") else {
                    throw QueryError(description: "record \(id ?? "") did not exist in tenant \(tenant) at \(Timestamp.format(moment))")
                }
                try printJSON(RecordSummary(row))
            default:
                guard let dimension = InsightDimension(rawValue: by) else { throw ValidationError("--by must be region, product or customer") }
                try printJSON(queries.insights(by: dimension, range: TimeRange()))
            }
        }
    }
}

/// A throwaway view replayed from the log up to `positions`, in a scratch directory beside
/// the views (its memory bounded like any view's; its files removed by `discardScratch`,
/// and those of a killed `audit as-of` or `replay --to` by the next one).
func scratchView(_ data: DataOptions, _ source: any EventSource, upTo positions: [Int64]) throws -> MaintainedView<RecordsProjector> {
    let parent = data.viewsDirectory + "/views"
    ProcessDirectory.removeOrphans(in: parent, prefix: "scratch-", storage: PosixStorage())
    let root = parent + "/" + ProcessDirectory.name("scratch-")
    let progress = ProgressLine(enabled: isatty(2) != 0)
    defer { progress.finish() }
    return try MaintainedView<RecordsProjector>.scratch(at: root, source: source, upTo: positions, options: RecordsViewAccess.options()) { done, total in
        progress.update("replaying \(done) of \(total) events")
    }
}

/// For each partition, the offset of the first event recorded after `moment` (its end
/// when there is none), found with the log's time index. Fails when `moment` is before
/// the first event.
func positionsRecorded(by moment: Int64, _ reader: any EventSource) throws -> [Int64] {
    let ends = try reader.endOffsets()
    let positions = try reader.offsets(recordedAfter: moment)
    var first: Int64?
    for partition in 0..<reader.partitionCount where ends[partition] > 0 {
        let earliest = try reader.readEvent(at: Position(partition: partition, offset: 0)).recordedTime
        first = min(first ?? earliest, earliest)
    }
    guard positions.contains(where: { $0 > 0 }) else {
        throw QueryError(description: first.map { "\(Timestamp.format(moment)) is before the first event, recorded at \(Timestamp.format($0))" }
            ?? "the log holds no events")
    }
    return positions
}
