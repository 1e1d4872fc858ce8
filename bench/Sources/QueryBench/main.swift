// QueryBench: in-process latency of the records view's queries (issue 15).
// Usage: QueryBench --data DIR [--tenant T] [--rounds N] [--only NAME]
// Opens the view once (as a long-running server would), then times record, customer,
// product, search, dashboard and month-dashboard queries on ids sampled from the view.
// It also times what a fresh query process pays before it answers: opening the log
// read-only and opening the view (its checkpoint checked against the log).
import EventStore
import Foundation
import OutOfStock
import RecordsView

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
guard let data = option("--data") else {
    FileHandle.standardError.write(Data("usage: QueryBench --data DIR [--tenant T] [--rounds N] [--only NAME]\n".utf8))
    exit(2)
}
let tenant = option("--tenant") ?? "default"
let rounds = option("--rounds").flatMap(Int.init) ?? 2_000
let only = option("--only")

let opening = now()
let reader = try await EventReader.open(at: data)
let opened = now()
let access = try RecordsViewAccess.open(root: data, source: reader)
print(String(format: "open log read-only: %.2f ms; open the view (checks, tail): %.2f ms", (opened - opening) * 1e3, (now() - opened) * 1e3))
let queries = access.queries(tenant: tenant)

// Ids to look up: pages from both ends and the middle of the records list.
var filter = RecordFilter()
filter.limit = 1_000
var sample = try queries.records(filter).records
filter.newestFirst = false
sample += try queries.records(filter).records
var rng = SystemRandomNumberGenerator()
sample.shuffle(using: &rng)
let words = ["mar", "blue", "hoodie", "jacket", "kft", "sport"]
let june = Timestamp.parse("2026-06-15T00:00:00Z") ?? 0

func measure(_ name: String, _ body: (Int) throws -> Void) rethrows {
    if let only, !name.contains(only) { return }
    var times: [Double] = []
    times.reserveCapacity(rounds)
    for i in 0..<rounds {
        let start = now()
        try body(i)
        times.append(now() - start)
    }
    times.sort()
    func ms(_ q: Double) -> String { String(format: "%.3f", times[min(times.count - 1, Int(Double(times.count) * q))] * 1_000) }
    print("| \(name) | \(rounds) | \(ms(0.5)) | \(ms(0.99)) | \(ms(0.999)) |")
}

print("tenant \(tenant): view of \(access.view.checkpoint.eventsApplied) events")
print("| query (in process, view open) | rounds | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|")
try measure("record ID") { i in _ = try queries.record(sample[i % sample.count].id) }
try measure("customer ID (counts + first 50)") { i in _ = try queries.customer(sample[i % sample.count].customerId) }
try measure("product ID (backlog)") { i in _ = try queries.product(sample[i % sample.count].productId) }
try measure("records --search WORD (page of 50)") { i in
    var f = RecordFilter()
    f.search = words[i % words.count]
    _ = try queries.records(f)
}
try measure("records --search hoodie (page of 50)") { _ in
    var f = RecordFilter()
    f.search = "hoodie"
    _ = try queries.records(f)
}
try measure("dashboard (all time)") { _ in _ = try queries.dashboard(range: TimeRange(), now: Int64(Date().timeIntervalSince1970 * 1e6)) }
try measure("dashboard --this-month (June 2026)") { _ in _ = try queries.dashboard(range: CalendarRange.thisMonth.range(at: june), now: june) }
