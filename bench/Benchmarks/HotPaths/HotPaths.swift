// The hot paths of Backorder under ordo-one/benchmark (`swift package benchmark` in bench/):
// store append, full scan, projection apply and the dashboard query. Thresholds for a 10 %
// regression are checked in under bench/Thresholds/; see bench/README.md. CI never runs this.
import Benchmark
import EventLog
import EventStore
import Foundation
import OutOfStock
import Projections
import RecordsView
import Synchronization

/// Directories the fixtures created, removed by the global teardown.
let temporaryDirectories = Mutex<[String]>([])

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "hotpaths-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    temporaryDirectories.withLock { $0.append(path) }
    return path
}

/// NDJSON events of the out-of-stock domain: 200 customers, 100 products, then requests of
/// which half are delivered in full, a tenth refunded and the rest left pending. (The
/// project's generator is not a product of the root package, so the suite makes its own.)
func domainLines(events: Int) -> String {
    var lines: [String] = []
    lines.reserveCapacity(events)
    var second = 0
    func at() -> String {
        second += 1
        let (h, m, s) = (second / 3_600 % 24, second / 60 % 60, second % 60)
        let day = 1 + second / 86_400 % 28, month = 1 + second / (86_400 * 28) % 12
        return String(format: "2026-%02d-%02dT%02d:%02d:%02dZ", month, day, h, m, s)
    }
    func event(_ type: String, _ data: String) -> String {
        "{\"id\":\"\(UUID().uuidString.lowercased())\",\"type\":\"\(type)\",\"tenant\":\"default\",\"at\":\"\(at())\",\"actor\":\"u017\",\"data\":{\(data)}}"
    }
    for c in 1...200 {
        lines.append(event("CustomerRegistered", "\"customerId\":\"C-\(c)\",\"number\":\"\(10_000 + c)\",\"name\":\"Customer \(c) Workwear\",\"country\":\"ES\",\"region\":\"Iberia\",\"city\":\"Madrid\""))
    }
    for p in 1...100 {
        lines.append(event("ProductRegistered", "\"productId\":\"P-\(p)\",\"sku\":\"SKU-\(p)\",\"name\":\"Trail shoe \(p)\",\"sizes\":[\"S\",\"M\",\"L\",\"XL\"]"))
    }
    var record = 0
    while lines.count < events {
        record += 1
        let quantity = 10 + record % 190
        lines.append(event("OutOfStockReported", "\"recordId\":\"R-\(record)\",\"customerId\":\"C-\(1 + record % 200)\",\"productId\":\"P-\(1 + record % 100)\",\"size\":\"XL\",\"quantity\":\(quantity),\"notes\":\"customer needs it before Friday\""))
        guard lines.count < events else { break }
        if record % 10 == 0 {
            lines.append(event("RefundRecorded", "\"recordId\":\"R-\(record)\",\"reason\":\"no longer needed\""))
        } else if record % 2 == 0 {
            lines.append(event("DeliveryRecorded", "\"recordId\":\"R-\(record)\",\"quantity\":\(quantity)"))
        }
    }
    return lines.prefix(events).joined(separator: "\n") + "\n"
}

/// A store holding `domainLines(events:)`, appended through the same ingest path as
/// `backorder append` (validation, domain rules, store), durability none: the fixture
/// measures nothing, it only has to exist.
func domainStore(events: Int) async throws -> String {
    let directory = temporaryDirectory("domain")
    let input = directory + ".ndjson"
    temporaryDirectories.withLock { $0.append(input) }
    try domainLines(events: events).write(toFile: input, atomically: true, encoding: .utf8)
    var storeOptions = StoreOptions()
    storeOptions.log.durability = .none
    let store = try await EventStore.open(at: directory, options: storeOptions)
    let fd = open(input, O_RDONLY)
    defer { close(fd) }
    var reader = LineReader(fd: fd, name: input)
    let report = try await Ingestor(store: store, options: IngestOptions()).ingest(&reader)
    try await store.close()
    guard report.appended == events else { throw FixtureError(message: "fixture: \(report.appended) of \(events) events appended, \(report.errors.prefix(3))") }
    return directory
}

/// A fixture that could not be built.
struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// One OutOfStockReported event, ~200 bytes of encoded data, on its own stream.
func reportEvent(_ number: Int, run: UInt64) -> NewEvent {
    var data = EventData()
    data[.recordId] = .string("R-\(number)")
    data[.customerId] = .string("C-000042")
    data[.productId] = .string("P-000007")
    data[.size] = .string("XL")
    data[.quantity] = .integer(120)
    data[.notes] = .string("customer needs it before Friday")
    data[.customerName] = .string("Martínez Workwear s.r.o.")
    data[.productName] = .string("Trail running shoe, graphite")
    return NewEvent(id: EventID(high: run, low: UInt64(number)), type: "OutOfStockReported", schemaVersion: 2, tenant: "default",
                    stream: "R-\(number)", businessTime: 1_767_225_600_000_000 + Int64(number), actor: "u017",
                    data: data.encoded(), expectedVersion: .any)
}

/// What the append benchmark needs: an open store and pre-built batches (building events
/// is the producer's work, not the store's).
struct AppendFixture: @unchecked Sendable {
    let store: EventStore
    let batches: [[NewEvent]]
}

let iterations = 40
let domainEvents = 100_000

let benchmarks: @Sendable () -> Void = {
    // A regression of more than 10 % in the median wall time or in allocations fails
    // `swift package benchmark thresholds check`.
    let tolerance: [BenchmarkMetric: BenchmarkThresholds] = [
        .wallClock: .init(relative: [.p50: 10.0, .p90: 10.0]),
        .mallocCountTotal: .init(relative: [.p50: 10.0, .p90: 10.0]),
    ]
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 2,
        maxDuration: .seconds(5),
        maxIterations: iterations,
        thresholds: tolerance)
    Benchmark.teardown = {
        for path in temporaryDirectories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }

    // 1,000 new events a call into an 8-partition store, durability none: the CPU path of
    // an append (checks, envelope encoding, batching, lz4, CRC, write) without the disk.
    Benchmark("StoreAppend1000") { (benchmark: Benchmark, fixture: AppendFixture) async throws in
        for i in benchmark.scaledIterations {
            blackHole(try await fixture.store.append(fixture.batches[i % fixture.batches.count]))
        }
    } setup: { () async throws -> AppendFixture in
        var options = StoreOptions()
        options.log.durability = .none
        let store = try await EventStore.open(at: temporaryDirectory("append"), options: options)
        let run = UInt64.random(in: 1...UInt64.max)
        let batches = (0..<(iterations + 4)).map { b in (0..<1_000).map { reportEvent(b * 1_000 + $0, run: run) } }
        return AppendFixture(store: store, batches: batches)
    }

    // Every event of a 100,000-event store, every partition: CRC, lz4, envelope decoding.
    Benchmark("Scan100k") { (benchmark: Benchmark, directory: String) async throws in
        let reader = try await EventReader.open(at: directory)
        benchmark.startMeasurement()
        var events = 0
        for partition in 0..<reader.partitionCount {
            var cursor = try reader.events(partition: partition, from: 0)
            while let batch = try cursor.next() { events += batch.count }
        }
        benchmark.stopMeasurement()
        guard events == domainEvents else { throw FixtureError(message: "scan: \(events) of \(domainEvents) events") }
    } setup: { () async throws -> String in
        try await domainStore(events: domainEvents)
    }

    // The records view built from the same 100,000 events into an empty view directory
    // (decode, apply, rows written and committed).
    Benchmark("ProjectionRebuild100k") { (benchmark: Benchmark, directory: String) async throws in
        let reader = try await EventReader.open(at: directory)
        let root = directory + "/views-\(UInt64.random(in: 0...UInt64.max))"
        benchmark.startMeasurement()
        blackHole(try RecordsViewAccess.update(root: root, source: reader))
        benchmark.stopMeasurement()
        try? FileManager.default.removeItem(atPath: root)
    } setup: { () async throws -> String in
        try await domainStore(events: domainEvents)
    }

    // The dashboard over the view of those events, in process.
    Benchmark("DashboardQuery100k") { (benchmark: Benchmark, access: RecordsViewAccess) async throws in
        let queries = access.queries(tenant: "default")
        for _ in benchmark.scaledIterations {
            blackHole(try queries.dashboard(range: TimeRange(), now: 1_800_000_000_000_000))
        }
    } setup: { () async throws -> RecordsViewAccess in
        let directory = try await domainStore(events: domainEvents)
        let reader = try await EventReader.open(at: directory)
        try RecordsViewAccess.update(root: directory, source: reader)
        return try RecordsViewAccess.open(root: directory, source: reader)
    }
}
