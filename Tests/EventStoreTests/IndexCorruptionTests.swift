import Foundation
import Testing
@testable import EventLog
@testable import EventStore
import KVStore

/// Damaged index files (`index/`: the rows' MANIFEST and table files): missing, truncated,
/// bit-flipped, from an earlier format, from another store. The store must notice, rebuild from the
/// log, and then behave exactly as with intact indexes: every stored id is a duplicate,
/// every stream continues at the right version, every stream reads back dense.
@Suite struct IndexCorruptionTests {
    static let streams = 10
    static let perStream = 20

    static func options() -> StoreOptions { .forTests(partitions: 2, preallocationBytes: 64 << 10) }

    static func event(_ stream: Int, _ n: Int, expected: ExpectedVersion = .any) -> NewEvent {
        NewEvent(id: EventID(high: 0xABCD_0000 + UInt64(stream), low: UInt64(n) + 1), type: "Test", tenant: "acme", stream: "S-\(stream)",
                 businessTime: Int64(n), actor: "u1", correlationId: nil, data: Array("event \(stream)/\(n)".utf8), expectedVersion: expected)
    }

    /// A store with `streams` × `perStream` events, closed cleanly.
    static func makeStore(_ dir: String) async throws {
        let store = try await EventStore.open(at: dir, options: options())
        for n in 0..<perStream { _ = try await store.append((0..<streams).map { event($0, n) }) }
        try await store.close()
    }

    /// Opens the damaged store and checks it behaves as an intact one.
    static func checkBehavesIntact(_ dir: String, _ damage: String, reason: String? = nil) async throws {
        let store = try await EventStore.open(at: dir, options: options())
        #expect(store.indexRebuildReason != nil, "\(damage): the rebuild is reported")
        if let reason { #expect(store.indexRebuildReason?.contains(reason) == true, "\(damage): \(store.indexRebuildReason ?? "no reason")") }
        let again = try await store.append((0..<streams).flatMap { s in (0..<perStream).map { event(s, $0) } })
        let appendedAgain = again.filter { if case .appended = $0 { true } else { false } }.count
        #expect(appendedAgain == 0, "\(damage): \(appendedAgain) stored events were appended a second time")
        if appendedAgain == 0 {
            let next = try await store.append((0..<streams).map { event($0, perStream, expected: .exact(Int64(perStream))) })
            #expect(next.allSatisfy { if case let .appended(_, version) = $0 { version == Int64(perStream) + 1 } else { false } }, "\(damage)")
        }
        for s in 0..<streams {
            let events = try store.readStream(tenant: "acme", stream: "S-\(s)")
            #expect(events.map(\.streamVersion) == Array(1...Int64(events.count)), "\(damage): stream S-\(s) is not dense")
        }
        try await store.close()
    }

    static func files(_ dir: String, suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir + "/index").filter { $0.hasSuffix(suffix) }.sorted().map { dir + "/index/" + $0 }
    }

    enum Damage: String, CaseIterable {
        case manifestDeleted, manifestTruncated, manifestFlipped, tableDeleted, tableTruncated, tableFooterFlipped, tableEmptied
        case indexOfAnotherLog, earlierFormat, fixedWidthValues, wholeIDKeys

        /// What an open must say of rows in an earlier format of the key-value store.
        var earlierFormatReason: String? {
            switch self {
            case .fixedWidthValues: "values of fixed 64-bit fields"
            case .wholeIDKeys: "ids filed under 128 bits"
            default: nil
            }
        }
    }

    @Test(arguments: Damage.allCases)
    func damagedIndexIsDetectedAndRebuilt(damage: Damage) async throws {
        let dir = NSTemporaryDirectory() + "backorder-index-damage-\(damage.rawValue)-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.makeStore(dir)
        let manifest = dir + "/index/MANIFEST"
        let tables = try Self.files(dir, suffix: ".sst")
        #expect(!tables.isEmpty)
        switch damage {
        case .manifestDeleted: try FileManager.default.removeItem(atPath: manifest)
        case .manifestTruncated: writeBytes(manifest, Array(readBytes(manifest).prefix(20)))
        case .manifestFlipped:
            var bytes = readBytes(manifest)
            bytes[bytes.count / 2] ^= 0x04
            writeBytes(manifest, bytes)
        case .tableDeleted: try FileManager.default.removeItem(atPath: tables[0])
        case .tableTruncated: writeBytes(tables[0], Array(readBytes(tables[0]).dropLast(7)))
        case .tableFooterFlipped:
            var bytes = readBytes(tables[0])
            bytes[bytes.count - 9] ^= 0x20
            writeBytes(tables[0], bytes)
        case .tableEmptied: writeBytes(tables[0], [])
        case .indexOfAnotherLog:
            // Another store with other events: its whole index put in place of this one's.
            let other = dir + "-other"
            defer { try? FileManager.default.removeItem(atPath: other) }
            let store = try await EventStore.open(at: other, options: Self.options())
            _ = try await store.append((0..<50).map { NewEvent(id: EventID(high: 7, low: UInt64($0) + 1), type: "Test", tenant: "acme", stream: "S-0",
                                                              businessTime: 0, actor: "u", correlationId: nil, data: [1], expectedVersion: .any) })
            try await store.close()
            try FileManager.default.removeItem(atPath: dir + "/index")
            try FileManager.default.copyItem(atPath: other + "/index", toPath: dir + "/index")
        case .earlierFormat:
            // The hash-table files of earlier builds beside (or instead of) the rows.
            writeBytes(dir + "/index/streams-0000.table", Array(repeating: 0xAB, count: 4096))
            writeBytes(dir + "/index/COVERAGE", Array("backorder-index 1\n".utf8))
        case .fixedWidthValues, .wholeIDKeys:
            // Format 3 of the rows (values of fixed 64-bit fields) or 4 (every id under a
            // 17-byte key). The coverage line is enough to tell them apart; their rows must
            // never be read as this format's.
            let rows = try KVStore.open(at: dir + "/index", options: StoreIndex.keyValueOptions(memoryBytes: 1 << 20))
            var metadata = rows.committedMetadata
            let line = Array(IndexCoverage.formatLine.utf8)
            #expect(metadata.starts(with: line))
            metadata.replaceSubrange(0..<line.count, with: Array((damage == .fixedWidthValues ? "backorder-index 3" : "backorder-index 4").utf8))
            try rows.put(Array(repeating: 0x69, count: IndexRow.keyBytes), Array(repeating: 0, count: damage == .fixedWidthValues ? 24 : 3))
            try rows.freeze(metadata: metadata)
            try rows.close()
        }
        try await Self.checkBehavesIntact(dir, damage.rawValue, reason: damage.earlierFormatReason)
        if damage.earlierFormatReason != nil {
            let store = try await EventStore.open(at: dir, options: Self.options())
            #expect(store.indexRebuildReason == nil, "rebuilt once, then trusted")
            try await store.close()
        }
        if damage == .earlierFormat { #expect(try Self.files(dir, suffix: ".table").isEmpty, "the old files are removed") }
    }

    /// A flipped bit inside a data block of the rows is found when the block is read: the
    /// append that needs it fails, naming the file, instead of trusting a wrong row; the
    /// log is intact, and without the index directory the next open rebuilds it.
    @Test func bitFlipInARowBlockStopsTheAppendAndARebuildRepairsIt() async throws {
        let dir = NSTemporaryDirectory() + "backorder-index-block-flip-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.makeStore(dir)
        for table in try Self.files(dir, suffix: ".sst") {
            var bytes = readBytes(table)
            bytes[12] ^= 0x01 // inside the first data block
            writeBytes(table, bytes)
        }
        let store = try await EventStore.open(at: dir, options: Self.options())
        var failure: EventStoreError?
        do {
            _ = try await store.append((0..<Self.streams).flatMap { s in (0..<Self.perStream).map { Self.event(s, $0) } })
        } catch let error as EventStoreError { failure = error }
        guard case let .indexDamaged(reason)? = failure else {
            Issue.record("a damaged row block must stop the append, not be trusted: \(String(describing: failure))")
            try await store.close()
            return
        }
        #expect(reason.contains(".sst"), "the message names the file: \(reason)")
        try? await store.close()
        try FileManager.default.removeItem(atPath: dir + "/index")
        try await Self.checkBehavesIntact(dir, "block flip, then index removed")
    }
}

private func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
private func writeBytes(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
