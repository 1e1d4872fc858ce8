// StoreBench: the event store's in-process append (issue 5) and the records view built
// from the log (issue 15). Usage: StoreBench [--events N] [--dir DIR] [--codec lz4|zstd|none]
// [--skip-view]. Each row gives events/s and the process's CPU time (user + system, all
// threads) per event, which moves less than wall time on a shared machine.
import EventLog
import EventStore
import Foundation
import OutOfStock
import Projections
import RecordsView

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return fallback }
    return v
}
let total = option("--events", 1_000_000)
let base = arguments.firstIndex(of: "--dir").map { arguments[$0 + 1] } ?? "/tmp"

/// Pre-built events: 100,000 streams, ~200-byte encoded data each (a realistic report).
func events(_ n: Int, idBase: UInt64, versions: [Int64]? = nil) -> [NewEvent] {
    var data = EventData()
    data[.recordId] = .string("R-000000")
    data[.customerId] = .string("C-000042")
    data[.productId] = .string("P-000007")
    data[.size] = .string("XL")
    data[.quantity] = .integer(120)
    data[.notes] = .string("customer needs it before Friday, call the store manager first")
    data[.customerName] = .string("Boutique Lemaire")
    data[.productName] = .string("Organic cotton T-shirt, navy")
    return (0..<n).map { i in
        var data = data
        data[.recordId] = .string("R-\(i % 100_000)")
        let bytes = data.encoded()
        return NewEvent(id: EventID(high: idBase, low: UInt64(i)), type: "OutOfStockReported", schemaVersion: 2, tenant: "acme",
                 stream: "record/R-\(i % 100_000)", businessTime: 1_767_225_600_000_000 + Int64(i), actor: "u017",
                 data: bytes, expectedVersion: versions.map { .exact($0[i]) } ?? .any)
    }
}

/// CPU seconds (user + system) of the process so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Appends `list` in 1,000-event calls, four submitted ahead; returns "N events/s, C µs CPU per event".
func appendAll(_ store: EventStore, _ list: [NewEvent]) async throws -> String {
    let start = now(), cpu = cpuSeconds()
    var inFlight: [SubmittedAppend] = []
    var i = 0
    while i < list.count {
        inFlight.append(try await store.submit(Array(list[i..<min(i + 1_000, list.count)])))
        i += 1_000
        if inFlight.count >= 4 { _ = try await inFlight.removeFirst().acknowledged() }
    }
    for s in inFlight { _ = try await s.acknowledged() }
    let rate = Double(list.count) / (now() - start), perEvent = (cpuSeconds() - cpu) / Double(list.count) * 1e6
    return "\(Int(rate)) events/s, \((perEvent * 100).rounded() / 100) µs CPU per event"
}

print("| # | measurement | result |")
print("|---|---|---|")
let directory = base + "/storebench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }
var options = StoreOptions()
options.log.partitionCount = 8
if let i = arguments.firstIndex(of: "--codec"), i + 1 < arguments.count {
    guard let codec = Codec(name: arguments[i + 1]) else { fatalError("--codec: lz4, zstd or none, not \(arguments[i + 1])") }
    options.log.codec = codec
}
print("(log codec \(options.log.codec))")
let store = try await EventStore.open(at: directory, options: options)
let fresh = events(total, idBase: 1)
print("| 1 | append, fresh ids, expected version any, fsync, 1,000 a call | \(try await appendAll(store, fresh)) |")
// The same streams again, each event with the exact expected version of its stream.
let perStream = total / 100_000
let versions = (0..<total).map { i in Int64(perStream + i / 100_000) }
let checked = events(total, idBase: 2, versions: versions)
print("| 2 | append, fresh ids, exact expected versions, fsync | \(try await appendAll(store, checked)) |")
print("| 3 | append of already stored ids (all duplicates, nothing written) | \(try await appendAll(store, fresh)) |")
try await store.close()
if arguments.contains("--skip-view") { exit(0) }

// The records view built from the log into an empty view directory (what `snapshot` does
// on a store appended with --skip-views); queries are QueryBench's.
let reader = try await EventReader.open(at: directory)
let start = now()
let (applied, _) = try RecordsViewAccess.update(root: directory + "/views", source: reader)
let seconds = now() - start
print("| 4 | records view built from the log (\(applied) events, rows committed) | \(Int(Double(applied) / seconds)) events/s |")
