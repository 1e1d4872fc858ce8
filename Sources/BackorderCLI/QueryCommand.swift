import ArgumentParser
import Consumers
import EventStore
import Foundation
import OutOfStock
import Projections
import RecordsView
import KVStore
import JetStreamStore

/// Answers a query for one tenant from the records view, current with the log as of the
/// query's start unless `--stale-ok` (library: `RecordsViewAccess`). Notes go to stderr.
func answer<T>(_ data: DataOptions, _ tenant: TenantOptions, _ body: (RecordsQueries) throws -> T) async throws -> (T, any EventSource) {
    let timing = PhaseTiming()
    defer { timing.report() }
    let source = try await data.openSource()
    timing.mark("open log")
    let progress = ProgressLine(enabled: !tenant.json && isatty(2) != 0)
    let access = try RecordsViewAccess.open(root: data.viewsDirectory, source: source, freshness: tenant.staleOK ? .staleOK : .current) { done, total in
        progress.update("bringing the view up to date: \(done) of \(total) events")
    }
    progress.finish()
    timing.mark("open view")
    defer { try? access.close() }
    for note in access.notes { printError("note: \(note)") }
    if access.behind > 0 {
        printError("note: this answer leaves out the newest \(access.behind) events (--stale-ok: the view as last saved)")
    }
    let queries = access.queries(tenant: tenant.tenant)
    guard try queries.tenantExists() else {
        let tenants = try access.tenants()
        printError("error: tenant \(tenant.tenant) has no data" + (tenants.isEmpty ? " (the store holds no events yet)" : " (tenants: \(tenants.joined(separator: ", ")))"))
        throw ExitCode(1)
    }
    timing.mark("find tenant")
    let result = try body(queries)
    timing.mark("answer")
    return (result, source)
}

/// `BACKORDER_TIMING=1`: how long each phase of a command took, on stderr.
final class PhaseTiming {
    private let enabled = getenv("BACKORDER_TIMING") != nil
    private var last = MonotonicTime.now
    private var phases: [(String, Double)] = []

    func mark(_ phase: String) {
        guard enabled else { return }
        let now = MonotonicTime.now
        phases.append((phase, now.seconds(since: last) * 1_000))
        last = now
    }

    func report() {
        guard enabled else { return }
        printError("timing: " + phases.map { "\($0.0) \(String(format: "%.2f", $0.1)) ms" }.joined(separator: ", "))
    }
}

/// Time-range options shared by queries.
struct RangeOptions: ParsableArguments {
    @Flag(help: "Only requests made today (UTC).") var today = false
    @Flag(help: "Only requests made this week (UTC, from Monday).") var thisWeek = false
    @Flag(help: "Only requests made this month (UTC).") var thisMonth = false
    @Option(help: "From this time (RFC 3339 or YYYY-MM-DD), inclusive.") var from: String?
    @Option(help: "Until this time (RFC 3339 or YYYY-MM-DD), exclusive.") var to: String?
    @Option(help: "The time ageing is measured at (default: now).") var now: String?

    func nowMicros() throws -> Int64 {
        if let now { return try parseTime(now, "--now") }
        return Int64(Date().timeIntervalSince1970 * 1_000_000)
    }

    func range() throws -> TimeRange {
        let now = try nowMicros()
        guard [today, thisWeek, thisMonth].filter({ $0 }).count + (from != nil || to != nil ? 1 : 0) <= 1 else {
            throw ValidationError("give one of --today, --this-week, --this-month or --from/--to")
        }
        if today { return CalendarRange.today.range(at: now) }
        if thisWeek { return CalendarRange.thisWeek.range(at: now) }
        if thisMonth { return CalendarRange.thisMonth.range(at: now) }
        return TimeRange(from: try from.map { try parseTime($0, "--from") }, to: try to.map { try parseTime($0, "--to") })
    }
}

func parseTime(_ text: String, _ option: String) throws -> Int64 {
    if let t = Timestamp.parseTimeOrDate(text) { return t }
    throw ValidationError("\(option): \"\(text)\" is not a time; use RFC 3339 (2026-11-22T09:41:07Z) or a date (2026-11-22)")
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// `backorder query`: answers from the materialized views, never by scanning the log.
struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Answer questions from the views (caught up with the log first).",
        subcommands: [DashboardQuery.self, RecordsQuery.self, CustomerQuery.self, ProductQuery.self, RecordQuery.self, InsightsQuery.self])
}

struct TenantOptions: ParsableArguments {
    @Option(help: "Tenant.") var tenant = "default"
    @Flag(help: "JSON output.") var json = false
    @Flag(help: "Answer from the view as last saved, without applying newer events first; says how many it leaves out.")
    var staleOK = false
    @Flag(help: ArgumentHelp("Answers are current by default (kept for scripts).", visibility: .hidden))
    var consistent = false
}

func runQuery(_ body: () async throws -> Void) async throws {
    do { try await body() } catch let error as QueryError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as EventStoreError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as ViewError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as ViewDamage {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as KVError {
        printError("error: views: \(error)")
        throw ExitCode(1)
    } catch let error as NatsError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as ConsumerError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

struct DashboardQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dashboard", abstract: "Status counts, quantities, ageing, oldest pending, top customers and products.")
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions
    @OptionGroup var range: RangeOptions

    func run() async throws {
        try await runQuery {
            let (r, now) = (try range.range(), try range.nowMicros())
            let (d, _) = try await answer(data, tenant) { try $0.dashboard(range: r, now: now) }
            if tenant.json { return try printJSON(d) }
            print("Dashboard — tenant \(tenant.tenant): \(d.requests) requests")
            print("status      " + RecordStatus.allCases.map { "\($0.rawValue) \(d.byStatus[$0.rawValue] ?? 0)" }.joined(separator: "   "))
            print("delivery    " + DeliveryState.allCases.map { "\($0.rawValue) \(d.byDeliveryState[$0.rawValue] ?? 0)" }.joined(separator: "   "))
            print("quantity    total \(d.totalQuantity)   delivered \(d.deliveredQuantity)   outstanding \(d.outstandingQuantity)")
            print("ageing      due soon (> 7 days) \(d.dueSoon)   overdue (> 14 days) \(d.overdue)")
            print("processing  " + (d.averageProcessingHours.map { String(format: "average %.1f days from request to completion", $0 / 24) } ?? "no completions"))
            printTable("Top customers by outstanding quantity", d.topCustomers.map { [$0.id, $0.name, String($0.outstanding)] })
            printTable("Top products by outstanding quantity", d.topProducts.map { [$0.id, $0.name, String($0.outstanding)] })
            printTable("Oldest pending requests (the first 10; --json lists 50)", d.oldestPending.prefix(10).map(summaryRow))
            printTable("Most recent completions", d.recentCompletions.map { completionRow($0) })
        }
    }
}

func summaryRow(_ r: RecordSummary) -> [String] {
    [r.id, String(r.requestedAt.prefix(10)), r.customerName, r.productName + (r.size.map { " (\($0))" } ?? ""), "\(r.delivered)/\(r.quantity)", r.status]
}

/// A completion's row: the completion date, not the request's (the table is ordered by it).
func completionRow(_ r: RecordSummary) -> [String] {
    [r.id, "done " + String((r.completedAt ?? r.requestedAt).prefix(10)), r.customerName, r.productName + (r.size.map { " (\($0))" } ?? ""),
     "\(r.delivered)/\(r.quantity)", r.status]
}

/// Prints an aligned table with a title.
func printTable(_ title: String, _ rows: [[String]]) {
    print("\n" + title)
    guard let columns = rows.map(\.count).max() else { print("  (none)"); return }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for row in rows {
        print("  " + row.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - cell.count) }.joined(separator: "  "))
    }
}

struct RecordsQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "records", abstract: "List requests: filters, search, sort, pages.")
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions
    @OptionGroup var range: RangeOptions
    @Option(help: "Only this customer's requests.") var customer: String?
    @Option(help: "Only this product's requests.") var product: String?
    @Option(help: "pending, completed, refunded or deleted.") var status: String?
    @Option(help: "needs-delivery, partial or done.") var delivery: String?
    @Option(help: "Words to find in customer name, product name or notes (prefix match).") var search: String?
    @Option(help: "newest or oldest.") var sort = "newest"
    @Option(help: "Page size, 1 to 1000.") var limit = 50
    @Option(help: "The nextCursor of the previous page.") var cursor: String?

    func run() async throws {
        var filter = RecordFilter()
        filter.customerId = customer
        filter.productId = product
        if let status { guard let s = RecordStatus(rawValue: status) else { throw ValidationError("unknown status \(status)") }; filter.status = s }
        if let delivery { guard let d = DeliveryState(rawValue: delivery) else { throw ValidationError("unknown delivery state \(delivery)") }; filter.deliveryState = d }
        guard sort == "newest" || sort == "oldest" else { throw ValidationError("--sort must be newest or oldest") }
        guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000") }
        filter.newestFirst = sort == "newest"
        filter.search = search
        filter.limit = limit
        filter.cursor = cursor
        filter.range = try range.range()
        try await runQuery {
            let (page, _) = try await answer(data, tenant) { try $0.records(filter) }
            if tenant.json { return try printJSON(page) }
            printTable("\(page.total) matching requests", page.records.map(summaryRow))
            if let next = page.nextCursor { print("\nnext page: --cursor \(next)") }
        }
    }
}

struct CustomerQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "customer", abstract: "A customer's details, counts and requests.")
    @Argument var id: String
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions
    @Option var limit = 50

    func run() async throws {
        try await runQuery {
            let (c, _) = try await answer(data, tenant) { try $0.customer(id, limit: limit) }
            if tenant.json { return try printJSON(c) }
            print("\(c.id) \(c.name) (number \(c.number), \(c.city ?? "-"), \(c.region ?? "-"))\(c.removed ? " — removed" : "")")
            print(c.byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "   "))
            printTable("Requests, newest first (\(c.requests.total))", c.requests.records.map(summaryRow))
        }
    }
}

struct ProductQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "product", abstract: "A product's backlog per size and the customers waiting.")
    @Argument var id: String
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions

    func run() async throws {
        try await runQuery {
            let (p, _) = try await answer(data, tenant) { try $0.product(id) }
            if tenant.json { return try printJSON(p) }
            print("\(p.id) \(p.name) (sku \(p.sku), sizes \(p.sizes.joined(separator: " ")))\(p.removed ? " — removed" : ""): \(p.outstanding) outstanding")
            let sizes = p.sizes + p.outstandingBySize.keys.filter { !p.sizes.contains($0) }.sorted()
            printTable("Outstanding by size", sizes.map { [$0, String(p.outstandingBySize[$0] ?? 0)] })
            printTable("Customers waiting", p.customersWaiting.map { [$0.id, $0.name, String($0.outstanding)] })
        }
    }
}

struct RecordQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "record", abstract: "One request's current state and its full history.")
    @Argument var id: String
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions

    func run() async throws {
        try await runQuery {
            let (found, reader) = try await answer(data, tenant) { try $0.record(id) }
            guard let row = found else { throw QueryError(description: "unknown record \(id) in tenant \(tenant.tenant)") }
            let details = try RecordDetails(row, tenant: tenant.tenant, source: reader)
            let (summary, history) = (details.record, details.history)
            if tenant.json { return try printJSON(details) }
            printTable("Record \(id)", [summaryRow(summary)])
            printTable("History", history.map { ["v\($0.version)", $0.at, $0.type, $0.actor, "recorded " + $0.recordedAt, "@" + $0.position] })
        }
    }
}

struct InsightsQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "insights", abstract: "Requests grouped by region, product or customer.")
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions
    @OptionGroup var range: RangeOptions
    @Option(help: "region, product or customer.") var by = "region"
    @Option var limit = 20

    func run() async throws {
        guard let dimension = InsightDimension(rawValue: by) else { throw ValidationError("--by must be region, product or customer") }
        try await runQuery {
            let r = try range.range()
            let (all, _) = try await answer(data, tenant) { try $0.insights(by: dimension, range: r) }
            let rows = Array(all.prefix(limit))
            if tenant.json { return try printJSON(rows) }
            printTable("By \(by): requests, customers, total and average quantity, last request",
                       rows.map { [$0.key, $0.name, String($0.requests), String($0.customers), String($0.totalQuantity), String(format: "%.1f", $0.averageQuantity), $0.lastRequest] })
        }
    }
}
