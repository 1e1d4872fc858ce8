import ArgumentParser
import EventLog
import EventStore
import Foundation
import OutOfStock
import Projections

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
            let reader = try await data.openSource()
            let positions = try positionsRecorded(by: moment, reader)
            let snapshots = SnapshotDirectory(root: data.viewsDirectory + "/views", name: RecordsView.name)
            let (projected, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots, upTo: positions)
            for skipped in report.skipped { printError("note: \(skipped)") }
            printError("as of \(Timestamp.format(moment)): positions \(positions), \(projected.eventsApplied) events "
                + "(\(report.snapshot.map { "snapshot \($0) + \(report.events) replayed" } ?? "\(report.events) replayed from the start"))")
            let book = try bookOf(projected, tenant)
            switch kind {
            case "dashboard":
                try printJSON(book.dashboard(range: TimeRange(), now: moment))
            case "records":
                var filter = RecordFilter()
                filter.limit = limit
                try printJSON(book.records(filter))
            case "customer":
                try printJSON(book.customer(id ?? "", limit: limit))
            case "product":
                try printJSON(book.product(id ?? ""))
            case "record":
                guard let row = book.records[id ?? ""] else {
                    throw QueryError(description: "record \(id ?? "") did not exist in tenant \(tenant) at \(Timestamp.format(moment))")
                }
                try printJSON(RecordSummary.from(row))
            default:
                guard let dimension = InsightDimension(rawValue: by) else { throw ValidationError("--by must be region, product or customer") }
                try printJSON(book.insights(by: dimension, range: TimeRange()))
            }
        }
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
