// QueryBench: in-process latency of the queries answered from a query table (issue 6).
// Usage: QueryBench --data DIR [--tenant T] [--rounds N]
// Opens the tenant's current table once (as a long-running server would), then times
// record, customer, product, search and dashboard queries on ids sampled from the table.
import EventStore
import Foundation
import OutOfStock

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
guard let data = option("--data") else {
    FileHandle.standardError.write(Data("usage: QueryBench --data DIR [--tenant T] [--rounds N]\n".utf8))
    exit(2)
}
let tenant = option("--tenant") ?? "default"
let rounds = option("--rounds").flatMap(Int.init) ?? 2_000

// What a fresh query process pays before it answers: opening the log read-only (recovery
// scan of each partition's active segment) and checking that the table is current.
let opening = now()
let reader = try await EventReader.open(at: data)
let opened = now()
let table: TenantTableReader
switch RecordsViewFiles(data: data).currentTable(tenant: tenant, reader: reader) {
case let .success(current):
    table = current.table
    print(String(format: "open log read-only: %.1f ms; current-table check: %.1f ms", (opened - opening) * 1e3, (now() - opened) * 1e3))
case let .failure(miss):
    print("no current table for tenant \(tenant): \(miss) (run `backorder snapshot --data \(data)` first)")
    exit(1)
}

// Ids to look up: pages from both ends and the middle of the records list.
var filter = RecordFilter()
filter.limit = 1_000
var sample = try table.records(filter).records
filter.newestFirst = false
sample += try table.records(filter).records
let middle = sample.count / 2
if let t = Timestamp.parse(sample.sorted { $0.requestedAt < $1.requestedAt }[middle].requestedAt) { filter.range = TimeRange(from: t) }
sample += try table.records(filter).records
var rng = SystemRandomNumberGenerator()
sample.shuffle(using: &rng)
let words = ["mar", "blue", "hoodie", "jacket", "kft", "sport"]

func measure(_ name: String, _ body: (Int) throws -> Void) rethrows {
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

print("tenant \(tenant): \(table.rowCount) requests; table \(table.metadata.positions.reduce(0, +)) events")
print("| query (in process, table open) | rounds | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|")
try measure("record ID") { i in _ = try table.record(sample[i % sample.count].id) }
try measure("customer ID (counts + first 50)") { i in _ = try table.customer(sample[i % sample.count].customerId) }
try measure("product ID (backlog)") { i in _ = try table.product(sample[i % sample.count].productId) }
try measure("records --search WORD (page of 50)") { i in
    var f = RecordFilter()
    f.search = words[i % words.count]
    _ = try table.records(f)
}
try measure("dashboard (all time)") { _ in _ = try table.dashboard(range: TimeRange(), now: Int64(Date().timeIntervalSince1970 * 1e6)) }
