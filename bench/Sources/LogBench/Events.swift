/// Deterministic out-of-stock events (JSON values of about 200 bytes), in the style of
/// `Sources/BackorderCLI/SampleEvents.swift` with one more field (`"store"`) so that the
/// value averages ~201 bytes rather than ~191; keys are `acme/R-nnnnnn` (13 bytes).
///
/// The events are generated once, before any timing, into a pool that the measurements
/// cycle through: JSON generation is not what is being measured, copying the events into
/// `RecordBatchBuilder`s is (that is work every producer does).
struct EventPool: Sendable {
    let keys: [[UInt8]]
    let values: [[UInt8]]
    /// Key + value bytes of all pool events.
    let rawBytes: Int

    var count: Int { keys.count }

    init(count: Int, seed: UInt64 = 1) {
        var generator = EventGenerator(seed: seed)
        var keys: [[UInt8]] = [], values: [[UInt8]] = []
        keys.reserveCapacity(count)
        values.reserveCapacity(count)
        var raw = 0
        for _ in 0..<count {
            let (key, value) = generator.next()
            raw += key.count + value.count
            keys.append(key)
            values.append(value)
        }
        self.keys = keys
        self.values = values
        self.rawBytes = raw
    }

    /// Mean key + value bytes of one record.
    var meanRecordBytes: Double { Double(rawBytes) / Double(max(count, 1)) }
    var meanValueBytes: Double { Double(values.reduce(0) { $0 + $1.count }) / Double(max(count, 1)) }
    var meanKeyBytes: Double { Double(keys.reduce(0) { $0 + $1.count }) / Double(max(count, 1)) }

    /// Timestamp of the `i`-th appended record: 1 ms apart from 2026-01-01T00:00:00Z (µs).
    @inline(__always)
    static func timestamp(_ i: Int) -> Int64 { 1_767_225_600_000_000 + Int64(i) * 1_000 }
}

struct EventGenerator {
    private var random: SplitMix64
    private var sequence = 0
    private static let sizes = ["S", "M", "L", "XL", "XXL", "XXXL"]
    private static let notes = ["", "customer needs it before Friday", "call when in stock", "partial ok", "urgent: store opening", "same as last order"]

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> (key: [UInt8], value: [UInt8]) {
        sequence += 1
        let record = Int(random.next() % 100_000)
        let customer = Int(random.next() % 2_000)
        let product = Int(random.next() % 1_000)
        let quantity = Int(random.next() % 1_990) + 10
        let store = Int(random.next() % 10)
        let size = Self.sizes[Int(random.next() % UInt64(Self.sizes.count))]
        let note = Self.notes[Int(random.next() % UInt64(Self.notes.count))]
        let json = #"{"type":"OutOfStockReported","tenant":"acme","actor":"u\#(customer % 40)","data":{"recordId":"R-\#(pad(record, 6))","customerId":"C-\#(pad(customer, 6))","productId":"P-\#(pad(product, 6))","store":\#(store),"size":"\#(size)","quantity":\#(quantity),"notes":"\#(note)"}}"#
        return (Array("acme/R-\(pad(record, 6))".utf8), Array(json.utf8))
    }

    private func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// SplitMix64: the same seed gives the same sequence everywhere.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
