// The events and the two measurements (batched ingest, single-event latency), the same
// code for every store through the EventAppender protocol.
import EventLog
import EventStore
import Foundation
import OutOfStock

/// Out-of-stock reports like the domain's (~200 bytes of encoded data each), spread over
/// `streams` record streams; expected version `.any`. Deterministic: every store gets the
/// same events.
func batchEvents(_ count: Int, streams: Int) -> [NewEvent] {
    let notes = ["customer needs it before Friday, call the store manager first", "repeat order", "",
                 "wholesale: 3 boxes, ask for a partial delivery if the rest is late"]
    let customers = ["Boutique Lemaire", "Martínez Workwear s.r.o.", "Café Nordlicht", "Hill & Sons"]
    let products = ["Organic cotton T-shirt, navy", "Trail running shoe, graphite", "Wool beanie", "Linen apron, sand"]
    let sizes = ["S", "M", "L", "XL", "42"]
    return (0..<count).map { i in
        let record = i % streams
        var data = EventData()
        data[.recordId] = .string("R-\(record)")
        data[.customerId] = .string("C-\(String(format: "%06d", record % 9_973))")
        data[.productId] = .string("P-\(String(format: "%06d", record % 1_009))")
        data[.size] = .string(sizes[record % sizes.count])
        data[.quantity] = .integer(Int64(1 + record % 240))
        data[.notes] = .string(notes[i % notes.count])
        data[.customerName] = .string(customers[record % customers.count])
        data[.productName] = .string(products[record % products.count])
        return NewEvent(id: EventID(high: 0xB0_0001, low: UInt64(i)), type: "OutOfStockReported", schemaVersion: 2, tenant: "acme",
                        stream: "record/R-\(record)", businessTime: 1_767_225_600_000_000 + Int64(i) * 1_000, actor: "u017",
                        data: data.encoded(), expectedVersion: .any)
    }
}

/// Reports on new streams, one event each, expected version `.exact(0)` (a record opened).
func singleEvents(_ count: Int) -> [NewEvent] {
    (0..<count).map { i in
        var data = EventData()
        data[.recordId] = .string("S-\(i)")
        data[.customerId] = .string("C-000042")
        data[.productId] = .string("P-000007")
        data[.size] = .string("XL")
        data[.quantity] = .integer(120)
        data[.notes] = .string("customer needs it before Friday, call the store manager first")
        data[.customerName] = .string("Boutique Lemaire")
        data[.productName] = .string("Organic cotton T-shirt, navy")
        return NewEvent(id: EventID(high: 0xB0_0002, low: UInt64(i)), type: "OutOfStockReported", schemaVersion: 2, tenant: "acme",
                        stream: "record/S-\(i)", businessTime: 1_767_225_600_000_000 + Int64(i) * 1_000, actor: "u017",
                        data: data.encoded(), expectedVersion: .exact(0))
    }
}

/// CPU used during a measurement, in cores (CPU seconds ÷ wall seconds).
struct CPUShare {
    var client = 0.0
    /// nil when the servers are not ours (--cluster): their CPU is not visible.
    var servers: Double?
    /// Everything else on the machine (other sessions, kernel threads).
    var rest = 0.0

    func describe() -> String {
        let servers = self.servers.map { String(format: "%.2f", $0) } ?? "n/a"
        return String(format: "%.2f", client) + " / " + servers + " / " + String(format: "%.2f", rest)
    }
}

/// Measures the CPU of the client, the servers and the rest of the machine around `body`.
@MainActor
func withCPU<T>(servers: (() -> Double)?, _ body: () async throws -> T) async rethrows -> (T, seconds: Double, cpu: CPUShare) {
    let machine0 = machineBusySeconds(), own0 = ownCPUSeconds(), servers0 = servers?() ?? 0
    let start = monotonicSeconds()
    let value = try await body()
    let seconds = monotonicSeconds() - start
    let own = ownCPUSeconds() - own0, serverCPU = (servers?() ?? 0) - servers0, machine = machineBusySeconds() - machine0
    let share = CPUShare(client: own / seconds, servers: servers == nil ? nil : serverCPU / seconds,
                         rest: max(0, machine - own - (servers == nil ? 0 : serverCPU)) / seconds)
    return (value, seconds, share)
}

/// Checks that every outcome is a new append (a duplicate would mean the store was not fresh).
func checkAppended(_ outcomes: [AppendOutcome], expected: Int) throws {
    guard outcomes.count == expected else { throw BenchError("\(outcomes.count) outcomes for \(expected) events") }
    for outcome in outcomes {
        guard case .appended = outcome else { throw BenchError("an event was not appended as new: \(outcome)") }
    }
}

/// Appends `events` in calls of `batch` events, keeping `window` calls in flight (each
/// new call is submitted once the oldest is acknowledged). Returns the wall time.
func batchedIngest(_ store: any EventAppender, _ events: [NewEvent], batch: Int, window: Int) async throws -> Double {
    let start = monotonicSeconds()
    var inFlight: [(pending: any PendingAppend, count: Int)] = []
    var i = 0
    while i < events.count {
        let part = Array(events[i..<min(i + batch, events.count)])
        inFlight.append((try await store.submitEvents(part), part.count))
        i += part.count
        if inFlight.count >= window {
            let oldest = inFlight.removeFirst()
            try checkAppended(try await oldest.pending.acknowledged(), expected: oldest.count)
        }
    }
    for call in inFlight { try checkAppended(try await call.pending.acknowledged(), expected: call.count) }
    return monotonicSeconds() - start
}

/// Latencies of single-event appends, each awaited before the next; the first `warmUp`
/// are sent but not counted. Returns the sorted latencies in seconds.
func singleAppends(_ store: any EventAppender, _ events: [NewEvent], warmUp: Int) async throws -> [Double] {
    var latencies: [Double] = []
    latencies.reserveCapacity(events.count)
    for (i, event) in events.enumerated() {
        let t0 = monotonicSeconds()
        let outcomes = try await store.submitEvents([event]).acknowledged()
        let elapsed = monotonicSeconds() - t0
        guard outcomes.count == 1, case .appended(_, version: 1) = outcomes[0] else {
            throw BenchError("single event \(i) was not appended as version 1: \(outcomes)")
        }
        if i >= warmUp { latencies.append(elapsed) }
    }
    return latencies.sorted()
}

/// The nearest-rank percentile of sorted values.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p * Double(sorted.count)).rounded(.up))
    return sorted[min(sorted.count, max(1, rank)) - 1]
}
