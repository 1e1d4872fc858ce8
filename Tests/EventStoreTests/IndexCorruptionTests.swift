import Foundation
import Testing
@testable import EventLog
@testable import EventStore

/// Damaged index files (`index/*.table`, `index/COVERAGE`): truncated, bit-flipped, from
/// another format version, from another store. The store must notice, rebuild from the
/// log, and then behave exactly as with intact indexes: every stored id is a duplicate,
/// every stream continues at the right version, every stream reads back dense.
@Suite struct IndexCorruptionTests {
    static let streams = 10
    static let perStream = 20

    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.log.partitionCount = 2
        options.log.lockTimeoutMilliseconds = 0
        options.log.preallocationBytes = 64 << 10
        return options
    }

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
    static func checkBehavesIntact(_ dir: String, _ damage: String) async throws {
        let store = try await EventStore.open(at: dir, options: options())
        if damage != Damage.garbageGrowFile.rawValue {
            #expect(store.indexRebuildReason != nil, "\(damage): the rebuild is reported")
        }
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

    static func tables(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir + "/index").filter { $0.hasSuffix(".table") }.sorted().map { dir + "/index/" + $0 }
    }

    enum Damage: String, CaseIterable {
        case truncatedTable, truncatedToHeader, flippedHeader, otherFormatVersion, emptyTable, garbageGrowFile
        case coverageDeleted, coverageTruncated, coverageFlipped, coverageOfAnotherLog, tableFromAnotherStore
    }

    @Test(arguments: Damage.allCases.filter { $0 != .tableFromAnotherStore })
    func damagedIndexIsDetectedAndRebuilt(damage: Damage) async throws {
        try await Self.damageAndCheck(damage)
    }

    /// Known limit: the tables carry nothing that ties them to their log or to the
    /// COVERAGE file beside them, so tables copied from another store (valid headers) under
    /// this store's clean COVERAGE are trusted: stored events are appended again and
    /// stream heads point at other streams' events.
    @Test(.disabled("known limit: index tables from another store are trusted under this store's COVERAGE; see docs/RELIABILITY.md"))
    func tablesFromAnotherStoreAreDetected() async throws {
        try await Self.damageAndCheck(.tableFromAnotherStore)
    }

    static func damageAndCheck(_ damage: Damage) async throws {
        let dir = NSTemporaryDirectory() + "backorder-index-damage-\(damage.rawValue)-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await makeStore(dir)
        let tables = try Self.tables(dir)
        #expect(tables.count == 4)
        let coverage = dir + "/index/COVERAGE"
        for table in tables {
            var bytes = readBytes(table)
            switch damage {
            case .truncatedTable: bytes = Array(bytes.prefix(bytes.count / 2))
            case .truncatedToHeader: bytes = Array(bytes.prefix(100))
            case .flippedHeader: bytes[9] ^= 0x10 // capacity
            case .otherFormatVersion:
                bytes[4] = 2 // a later format, with a valid header checksum
                let crc = CRC32C.checksum(Array(bytes[0..<60]))
                withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(60..<64, with: $0) }
            case .emptyTable: bytes = []
            case .garbageGrowFile: writeBytes(table + ".grow", Array(repeating: 0xEE, count: 5000))
            default: break
            }
            writeBytes(table, bytes)
        }
        switch damage {
        case .coverageDeleted: try FileManager.default.removeItem(atPath: coverage)
        case .coverageTruncated: writeBytes(coverage, Array(readBytes(coverage).prefix(30)))
        case .coverageFlipped:
            var bytes = readBytes(coverage)
            bytes[bytes.count / 2] ^= 0x04
            writeBytes(coverage, bytes)
        case .coverageOfAnotherLog, .tableFromAnotherStore:
            // Another store with other events, in the same layout.
            let other = dir + "-other"
            defer { try? FileManager.default.removeItem(atPath: other) }
            let store = try await EventStore.open(at: other, options: options())
            _ = try await store.append((0..<50).map { NewEvent(id: EventID(high: 7, low: UInt64($0) + 1), type: "Test", tenant: "acme", stream: "S-0",
                                                              businessTime: 0, actor: "u", correlationId: nil, data: [1], expectedVersion: .any) })
            try await store.close()
            if damage == .coverageOfAnotherLog {
                writeBytes(coverage, readBytes(other + "/index/COVERAGE"))
            } else {
                for table in try Self.tables(other) { writeBytes(dir + "/index/" + (table as NSString).lastPathComponent, readBytes(table)) }
            }
        default: break
        }
        try await checkBehavesIntact(dir, damage.rawValue)
    }

    /// Known limit: the table slots carry no checksum, so a bit flipped inside an occupied
    /// slot of a cleanly closed table is trusted. A flipped id key hides a stored event, and
    /// appending it again stores it twice.
    @Test(.disabled("known limit: bit flips inside index table slots are trusted (no per-slot or whole-table checksum); see docs/RELIABILITY.md"))
    func bitFlipInAnOccupiedSlotIsDetected() async throws {
        let dir = NSTemporaryDirectory() + "backorder-index-slot-flip-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.makeStore(dir)
        for table in try Self.tables(dir) where table.contains("event-ids") {
            var bytes = readBytes(table)
            // The first occupied slot: flip a bit of its key.
            var slot = PersistentHashTable.headerBytes
            while slot + 32 <= bytes.count && bytes[slot..<(slot + 32)].allSatisfy({ $0 == 0 }) { slot += 32 }
            if slot + 32 <= bytes.count { bytes[slot + 3] ^= 0x01 }
            writeBytes(table, bytes)
        }
        try await Self.checkBehavesIntact(dir, "slot bit flip")
    }
}

private func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
private func writeBytes(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
