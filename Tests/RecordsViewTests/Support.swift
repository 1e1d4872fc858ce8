import DataGenerator
import EventLog
import EventStore
import Foundation
import KVStore
import OutOfStock
import Projections
@testable import RecordsView

func freshDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "rv-" + name.filter { $0.isLetter || $0.isNumber } + "-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

func line(_ type: String, _ data: String, tenant: String = "acme", at: String = "2026-03-01T10:00:00Z") -> String {
    "{\"type\":\"\(type)\",\"tenant\":\"\(tenant)\",\"at\":\"\(at)\",\"actor\":\"u001\",\"data\":{\(data)}}"
}

/// Appends lines through the ingestor (all rules checked) into the store in `directory`.
@discardableResult
func ingest(_ lines: [String], into directory: String, partitions: Int = 4) async throws -> IngestReport {
    var storeOptions = StoreOptions()
    storeOptions.log.partitionCount = partitions
    storeOptions.log.lockTimeoutMilliseconds = 5_000
    let store = try await EventStore.open(at: directory, options: storeOptions)
    let path = directory + "-input-\(UInt32.random(in: 0...UInt32.max)).ndjson"
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var reader = LineReader(fd: fd, name: path)
    let report = try await Ingestor(store: store, options: IngestOptions()).ingest(&reader)
    try await store.close()
    return report
}

/// Generated events: `tenants` tenants, few customers and products, so that rankings tie.
func generatedLines(events: Int, tenants: Int = 2, seed: UInt64 = 11) -> [String] {
    var options = GeneratorOptions()
    options.events = events
    options.seed = seed
    options.customersPerTenant = 40
    options.productsPerTenant = 20
    options.tenants = tenants
    var lines: [String] = []
    var generator = EventGenerator(options: options)
    while let l = generator.next() { lines.append(String(decoding: l, as: UTF8.self)) }
    return lines
}

/// Small key-value options: many flushes and compactions in a small test.
func smallViewOptions() -> KVOptions {
    var o = RecordsViewAccess.options()
    o.memtableBytes = 256 << 10
    o.targetFileBytes = 256 << 10
    o.level1Bytes = 1 << 20
    o.levelMultiplier = 4
    o.blockBytes = 1 << 10
    return o
}

/// The reference view of every event in the log.
func referenceView(_ source: any EventSource) throws -> ReferenceView {
    var view = ReferenceView()
    for lane in 0..<source.partitionCount {
        var cursor = try source.events(partition: lane, from: 0)
        while let batch = try cursor.next() { try view.apply(batch) }
    }
    return view
}

/// Every key and value of a snapshot, in order.
func rows(_ snapshot: KVSnapshot) throws -> [([UInt8], [UInt8])] {
    let it = snapshot.makeIterator()
    var out: [([UInt8], [UInt8])] = []
    try it.seekToFirst()
    while it.isValid {
        out.append((Array(it.key), Array(it.value)))
        try it.next()
    }
    return out
}

/// The view rebuilt from the whole log into a fresh directory, as rows.
func rebuiltRows(_ source: any EventSource, options: KVOptions = smallViewOptions()) throws -> [([UInt8], [UInt8])] {
    let root = freshDirectory("rebuilt")
    defer { try? FileManager.default.removeItem(atPath: root) }
    _ = try MaintainedView<RecordsProjector>.rebuild(root: root, source: source, options: options)
    let reader = try MaintainedView<RecordsProjector>.openReader(root: root, source: source, options: options)
    defer { try? reader.close() }
    return try rows(reader.snapshot())
}

func sameRows(_ a: [([UInt8], [UInt8])], _ b: [([UInt8], [UInt8])]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}

/// The first row where two row lists differ, for messages.
func firstDifference(_ a: [([UInt8], [UInt8])], _ b: [([UInt8], [UInt8])]) -> String {
    for (x, y) in zip(a, b) where x.0 != y.0 || x.1 != y.1 {
        return "\(RowKeys.describe(x.0)) = \(x.1) vs \(RowKeys.describe(y.0)) = \(y.1)"
    }
    return a.count == b.count ? "none" : "\(a.count) rows vs \(b.count)"
}
