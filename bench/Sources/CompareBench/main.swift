// CompareBench: the Backorder measurements of bench/compare that the `backorder` CLI
// cannot make — single-event append latency, concurrent single-event appenders, and a
// full read-back of every stored event — on a store the CLI has already loaded.
// Prints one JSON object on standard output. See bench/README.md, "bench/compare".
//
//   CompareBench single     --data DIR [--count N] [--durability fsync|interval]
//   CompareBench concurrent --data DIR [--clients 32] [--count N] [--durability ...]
//   CompareBench read       --data DIR
import EventLog
import EventStore
import Foundation
import OutOfStock

/// Seconds on CLOCK_MONOTONIC.
func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Fails with a message and exit status 2 (usage or setup error).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("CompareBench: \(message)\n".utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else { fail("usage: CompareBench single|concurrent|read --data DIR [options]") }

func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name) else { return nil }
    guard i + 1 < arguments.count else { fail("\(name) needs a value") }
    return arguments[i + 1]
}

func intOption(_ name: String, _ fallback: Int) -> Int {
    guard let text = option(name) else { return fallback }
    guard let value = Int(text), value > 0 else { fail("\(name) must be a positive integer, not \"\(text)\"") }
    return value
}

guard let directory = option("--data") else { fail("--data DIR is required") }
let count = intOption("--count", 2_000)
let clients = intOption("--clients", 32)
guard let durability = Durability(parsing: option("--durability") ?? "fsync") else { fail("--durability must be fsync, interval[:MS] or none") }
// Distinguishes this run's streams and ids from every earlier run on the same store.
let runTag = UInt64(UInt32(truncatingIfNeeded: getpid())) << 32 | UInt64(UInt32(truncatingIfNeeded: Int(monotonicSeconds() * 1_000)))

/// One OutOfStockReported event on a new stream (~200 bytes of data, like the data set's).
func reportEvent(_ number: Int) -> NewEvent {
    let record = "R-B\(runTag % 1_000_000)-\(number)"
    var data = EventData()
    data[.recordId] = .string(record)
    data[.customerId] = .string("C-000042")
    data[.productId] = .string("P-000007")
    data[.size] = .string("XL")
    data[.quantity] = .integer(120)
    data[.notes] = .string("customer needs it before Friday")
    data[.customerName] = .string("Martínez Workwear s.r.o.")
    data[.productName] = .string("Trail running shoe, graphite")
    return NewEvent(id: EventID(high: runTag, low: UInt64(number)), type: "OutOfStockReported", schemaVersion: 2, tenant: "bench",
                    stream: record, businessTime: EventStore.wallClockMicroseconds(), actor: "u017",
                    data: data.encoded(), expectedVersion: .exact(0))
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
}

func openStore() async -> EventStore {
    var options = StoreOptions()
    options.log.durability = durability
    do { return try await EventStore.open(at: directory, options: options) } catch { fail("cannot open the store at \(directory): \(error)") }
}

/// Appends one event and checks that it was stored as version 1 of its new stream.
func appendOne(_ store: EventStore, _ event: NewEvent) async throws {
    let outcomes = try await store.append([event])
    guard outcomes.count == 1, case .appended(_, version: 1) = outcomes[0] else {
        fail("event \(event.id) was not appended as version 1: \(outcomes)")
    }
}

switch mode {
case "single":
    // One caller, one event per append, each acknowledged before the next is sent.
    let store = await openStore()
    let warmUp = 100
    let events = (0..<(count + warmUp)).map(reportEvent)
    var latencies: [Double] = []
    latencies.reserveCapacity(count)
    let start = monotonicSeconds()
    var measuredStart = start
    for (i, event) in events.enumerated() {
        if i == warmUp { measuredStart = monotonicSeconds() }
        let t0 = monotonicSeconds()
        try await appendOne(store, event)
        if i >= warmUp { latencies.append(monotonicSeconds() - t0) }
    }
    let seconds = monotonicSeconds() - measuredStart
    try await store.close()
    latencies.sort()
    print("{\"mode\":\"single\",\"count\":\(count),\"durability\":\"\(durability)\",\"seconds\":\(seconds),\"eventsPerSecond\":\(Double(count) / seconds),\"p50\":\(percentile(latencies, 0.5)),\"p99\":\(percentile(latencies, 0.99)),\"max\":\(latencies.last ?? 0)}")

case "concurrent":
    // `clients` tasks, each appending single events one after another; the store's group
    // commit shares fdatasyncs between them.
    let store = await openStore()
    let perClient = max(1, count / clients)
    let events = (0..<(perClient * clients)).map(reportEvent)
    let start = monotonicSeconds()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in 0..<clients {
            let mine = Array(events[(client * perClient)..<((client + 1) * perClient)])
            group.addTask { for event in mine { try await appendOne(store, event) } }
        }
        try await group.waitForAll()
    }
    let seconds = monotonicSeconds() - start
    try await store.close()
    print("{\"mode\":\"concurrent\",\"clients\":\(clients),\"count\":\(events.count),\"durability\":\"\(durability)\",\"seconds\":\(seconds),\"eventsPerSecond\":\(Double(events.count) / seconds)}")

case "read":
    // Every stored event, partition after partition on one task: CRC check, decompression,
    // envelope decoding; the data bytes are touched so nothing is skipped.
    let reader: EventReader
    do { reader = try await EventReader.open(at: directory) } catch { fail("cannot open \(directory): \(error)") }
    let start = monotonicSeconds()
    var events = 0, dataBytes = 0, checksum = 0
    for partition in 0..<reader.partitionCount {
        var cursor = try reader.events(partition: partition, from: 0)
        while let batch = try cursor.next() {
            events += batch.count
            for event in batch {
                dataBytes += event.data.count
                checksum &+= Int(event.data.last ?? 0) &+ Int(event.streamVersion)
            }
        }
    }
    let seconds = monotonicSeconds() - start
    print("{\"mode\":\"read\",\"events\":\(events),\"dataBytes\":\(dataBytes),\"checksum\":\(checksum),\"seconds\":\(seconds),\"eventsPerSecond\":\(Double(events) / seconds)}")

default:
    fail("unknown mode \(mode): use single, concurrent or read")
}
