import Foundation
import DataGenerator
import EventLog

/// A small deterministic source of out-of-stock events (JSON, about 200 bytes) for the
/// log's demo and benchmarks. The full domain generator comes with the event store.
struct SampleEvents {
    struct Event {
        let key: [UInt8]
        let value: [UInt8]
        let timestamp: Int64
    }

    private var random: SplitMix64
    private var sequence = 0
    private let start: Int64 = 1_767_225_600_000_000 // 2026-01-01T00:00:00Z in µs
    private static let sizes = ["S", "M", "L", "XL", "XXL", "XXXL"]
    private static let notes = ["", "customer needs it before Friday", "call when in stock", "partial ok", "urgent: store opening", "same as last order"]

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> Event {
        sequence += 1
        let record = Int(random.next() % 100_000)
        let customer = Int(random.next() % 2_000)
        let product = Int(random.next() % 1_000)
        let quantity = Int(random.next() % 1_990) + 10
        let timestamp = start + Int64(sequence) * 1_000
        let size = Self.sizes[Int(random.next() % UInt64(Self.sizes.count))]
        let note = Self.notes[Int(random.next() % UInt64(Self.notes.count))]
        let json = #"{"type":"OutOfStockReported","tenant":"acme","actor":"u\#(customer % 40)","data":{"recordId":"R-\#(pad6(record))","customerId":"C-\#(pad6(customer))","productId":"P-\#(pad6(product))","size":"\#(size)","quantity":\#(quantity),"notes":"\#(note)"}}"#
        return Event(key: Array("acme/R-\(pad6(record))".utf8), value: Array(json.utf8), timestamp: timestamp)
    }

    private func pad6(_ n: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, 6 - s.count)) + s
    }
}

/// Wall-clock intervals for progress and throughput lines.
struct MonotonicTime {
    let nanoseconds: UInt64
    static var now: MonotonicTime {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return MonotonicTime(nanoseconds: UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec))
    }
    func seconds(since start: MonotonicTime) -> Double { Double(nanoseconds - start.nanoseconds) / 1e9 }
}
