import Foundation
import DataGenerator
import Testing
@testable import EventLog

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "backorder-test-\(safe)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func options(partitions: Int = 1, segmentBytes: Int = 64 << 20, codec: Codec = .lz4,
             durability: Durability = .fsync, writable: Bool = true) -> LogOptions {
    var options = LogOptions()
    options.partitionCount = partitions
    options.segmentBytes = segmentBytes
    options.codec = codec
    options.durability = durability
    options.writable = writable
    options.lockTimeoutMilliseconds = 0
    options.preallocationBytes = 256 << 10
    options.recoveryCheckpointBytes = 64 << 10
    return options
}

/// Deterministic record values of varying sizes.
func sampleValue(_ i: Int) -> [UInt8] {
    var bytes = Array("{\"recordId\":\"R-\(i)\",\"quantity\":\(i % 1000),\"notes\":\"".utf8)
    var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
    for _ in 0..<(i % 180) {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(UInt8(97 + (x >> 60)))
    }
    bytes.append(contentsOf: Array("\"}".utf8))
    return bytes
}

func sampleRecord(_ i: Int) -> Record {
    Record(offset: Int64(i), timestamp: 1_700_000_000_000_000 + Int64(i) * 1_000, key: Array("key-\(i % 17)".utf8), value: sampleValue(i))
}

/// A seeded batch of 1…`maxRecords` records from offset `base`, numbered on from `next`
/// (timestamps and values follow `next`; keys cycle through `keys` names).
func randomBatch(base: Int64, next: inout Int, maxRecords: Int, keys: Int, using random: inout SplitMix64) throws -> (RecordBatchBuilder, [Record]) {
    var batch = RecordBatchBuilder()
    var records: [Record] = []
    for i in 0..<Int.random(in: 1...maxRecords, using: &random) {
        let record = Record(offset: base + Int64(i), timestamp: Int64(next), key: Array("k\(next % keys)".utf8), value: sampleValue(next))
        next += 1
        try batch.append(key: record.key, value: record.value, timestamp: record.timestamp)
        records.append(record)
    }
    return (batch, records)
}

/// Appends records `range` (sampleRecord) to one partition in batches of `batchSize`.
@discardableResult
func appendSamples(_ log: WriteAheadLog, _ range: Range<Int>, batchSize: Int, partition: Int = 0) async throws -> [AppendAcknowledgement] {
    var acks: [AppendAcknowledgement] = []
    var i = range.lowerBound
    while i < range.upperBound {
        var batch = RecordBatchBuilder()
        for j in i..<min(i + batchSize, range.upperBound) {
            let record = sampleRecord(j)
            try batch.append(key: record.key, value: record.value, timestamp: record.timestamp)
        }
        acks.append(try await log.append(batch, partition: partition))
        i += batchSize
    }
    return acks
}

/// Every record of a partition, read through a cursor from `offset`.
func readAll(_ log: WriteAheadLog, partition: Int = 0, from offset: Int64 = 0) throws -> [Record] {
    var cursor = try log.cursor(partition: partition, from: offset)
    var records: [Record] = []
    while let batch = try cursor.next() {
        for record in batch.recordList() where record.offset >= offset { records.append(record) }
    }
    return records
}

/// Segment files of a partition, sorted by base offset.
func segmentFiles(_ logPath: String, partition: Int = 0) -> [String] {
    let directory = logPath + "/" + WriteAheadLog.partitionDirectoryName(partition)
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.filter { $0.hasSuffix(".log") }.sorted().map { directory + "/" + $0 }
}

/// The `backorder` executable built beside the test bundle.
func backorderExecutable() throws -> String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = bundle.deletingLastPathComponent()
    // The test runner may be inside BackorderPackageTests.xctest/…: walk up to the build dir.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("backorder").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw TestFailure("the backorder executable was not found beside \(bundle.path); run `swift build` before `swift test`")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The project's seeded generator, for reproducible test randomness.
typealias SeededRandom = SplitMix64

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
func writeFile(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
