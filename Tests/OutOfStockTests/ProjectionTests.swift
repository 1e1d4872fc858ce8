import DataGenerator
import Foundation
import Testing
@testable import EventLog
@testable import EventStore
@testable import OutOfStock
@testable import Projections

/// A store filled with generated events, appended in several runs.
func generatedStore(_ directory: String, events: Int, runs: Int = 3) async throws {
    var options = GeneratorOptions()
    options.events = events
    options.seed = 11
    options.customersPerTenant = 40
    options.productsPerTenant = 20
    options.tenants = 2
    var lines: [String] = []
    var generator = EventGenerator(options: options)
    while let line = generator.next() { lines.append(String(decoding: line, as: UTF8.self)) }
    let per = (lines.count + runs - 1) / runs
    for run in 0..<runs {
        let report = try await ingest(Array(lines[(run * per)..<min((run + 1) * per, lines.count)]), into: directory)
        #expect(report.rejected == 0, "\(report.errors.prefix(3))")
    }
}

@Suite(.serialized) struct ProjectionTests {
    /// The view kept up incrementally (snapshot, more events, catch-up) is byte for byte
    /// the view rebuilt from the whole log.
    @Test func rebuiltViewEqualsIncrementalViewByteForByte() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await generatedStore(dir, events: 3_000, runs: 1)
        let snapshots = SnapshotDirectory(root: dir + "/views", name: RecordsView.name)
        var reader = try await EventReader.open(at: dir)
        let (first, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        #expect(report.current && report.snapshot == nil && report.events == 3_000)
        try snapshots.write(first, logID: reader.log.manifest.logID)
        reader = try await EventReader.open(at: dir)
        let (incremental, report2) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        #expect(report2.snapshot != nil && report2.events == 0)
        let rebuilt = try await Projection.rebuild(RecordsView.self, reader: reader)
        #expect(rebuilt.positions == incremental.positions)
        #expect(rebuilt.view.encoded() == incremental.view.encoded())
        #expect(try RecordsView(decoding: rebuilt.view.encoded()) == rebuilt.view)
    }

    @Test func catchUpAfterMoreAppendsMatchesARebuild() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = GeneratorOptions()
        options.events = 4_000
        options.seed = 3
        options.customersPerTenant = 30
        options.productsPerTenant = 10
        var lines: [String] = []
        var generator = EventGenerator(options: options)
        while let l = generator.next() { lines.append(String(decoding: l, as: UTF8.self)) }
        let snapshots = SnapshotDirectory(root: dir + "/views", name: RecordsView.name)
        // Append in parts; after each, catch the view up from its newest snapshot and save one.
        for part in 0..<4 {
            #expect(try await ingest(Array(lines[(part * 1_000)..<((part + 1) * 1_000)]), into: dir).rejected == 0)
            let reader = try await EventReader.open(at: dir)
            let (view, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
            #expect(report.current)
            #expect(view.eventsApplied == Int64((part + 1) * 1_000))
            try snapshots.write(view, logID: reader.log.manifest.logID)
        }
        #expect(snapshots.list().count == 3, "the newest three are kept")
        let reader = try await EventReader.open(at: dir)
        let (incremental, _) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        let rebuilt = try await Projection.rebuild(RecordsView.self, reader: reader)
        #expect(rebuilt.view.encoded() == incremental.view.encoded())
    }

    @Test func damagedOrForeignSnapshotsAreSkippedNeverTrusted() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await generatedStore(dir, events: 1_500, runs: 1)
        let snapshots = SnapshotDirectory(root: dir + "/views", name: RecordsView.name)
        let reader = try await EventReader.open(at: dir)
        let (view, _) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        let good = try snapshots.write(view, logID: reader.log.manifest.logID)
        let expected = view.view.encoded()
        for damage in ["flip", "truncate", "version", "empty"] {
            let bad = try snapshots.write(view, logID: reader.log.manifest.logID)
            var bytes = [UInt8](FileManager.default.contents(atPath: bad) ?? Data())
            switch damage {
            case "flip": bytes[bytes.count / 2] ^= 0x10
            case "truncate": bytes.removeLast(bytes.count / 3)
            case "version": bytes[12] = 99 // view version field (CRC then fails too)
            default: bytes = []
            }
            _ = FileManager.default.createFile(atPath: bad, contents: Data(bytes))
            let (loaded, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
            #expect(report.skipped.count >= 1, "\(damage): the damaged snapshot is reported")
            #expect(report.skipped.first?.description.contains(bad) == true)
            #expect(loaded.view.encoded() == expected, "\(damage): the view is still right")
            try FileManager.default.removeItem(atPath: bad)
        }
        // With every snapshot damaged, the view is rebuilt from the log.
        _ = FileManager.default.createFile(atPath: good, contents: Data([1, 2, 3]))
        let (rebuilt, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        #expect(report.snapshot == nil && report.events == 1_500)
        #expect(rebuilt.view.encoded() == expected)
    }

    @Test func queriesAnswerFromTheView() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = try await ingest(setupLines + [
            line("DeliveryRecorded", #""recordId":"R-1","quantity":40"#, at: "2026-03-02T10:00:00Z"),
            line("OutOfStockReported", #""recordId":"R-2","customerId":"C-1","productId":"P-1","size":"S","quantity":5,"notes":"urgent shop opening"#, at: "2026-03-05T10:00:00Z"),
            line("OutOfStockReported", #""recordId":"R-3","customerId":"C-1","productId":"P-1","size":"L","quantity":7"#, at: "2026-03-06T10:00:00Z"),
            line("DeliveryRecorded", #""recordId":"R-3","quantity":7"#, at: "2026-03-08T10:00:00Z"),
        ].map { $0.replacingOccurrences(of: #""notes":"urgent shop opening}"#, with: #""notes":"urgent shop opening"}"#) }, into: dir)
        #expect(report.rejected == 0, "\(report.errors)")
        let reader = try await EventReader.open(at: dir)
        let (view, _) = try Projection.load(RecordsView.self, reader: reader, snapshots: SnapshotDirectory(root: dir + "/views", name: RecordsView.name))
        let book = try #require(view.view.tenants["acme"])
        // R-1 is 16 days old (overdue), R-2 12 days (due soon).
        let now = try #require(Timestamp.parse("2026-03-17T00:00:00Z"))
        let d = book.dashboard(range: TimeRange(), now: now)
        #expect(d.requests == 3)
        #expect(d.byStatus == ["pending": 2, "completed": 1])
        #expect(d.byDeliveryState == ["partial": 1, "needs-delivery": 1, "done": 1])
        #expect(d.totalQuantity == 112 && d.deliveredQuantity == 47 && d.outstandingQuantity == 65)
        #expect(d.overdue == 1 && d.dueSoon == 1)
        #expect(d.oldestPending.map(\.id) == ["R-1", "R-2"])
        #expect(d.recentCompletions.map(\.id) == ["R-3"])
        #expect(d.topCustomers.first?.name == #"Ada & Co, "Ltd""#)
        #expect(d.averageProcessingHours == 48)
        // The records list: search, filters, pages with a cursor.
        var filter = RecordFilter()
        filter.search = "URG"
        #expect(try book.records(filter).records.map(\.id) == ["R-2"])
        filter = RecordFilter()
        filter.limit = 2
        let page1 = try book.records(filter)
        #expect(page1.total == 3 && page1.records.map(\.id) == ["R-3", "R-2"])
        filter.cursor = page1.nextCursor
        let page2 = try book.records(filter)
        #expect(page2.records.map(\.id) == ["R-1"] && page2.nextCursor == nil)
        filter.cursor = "garbage"
        #expect(throws: QueryError.self) { try book.records(filter) }
        let product = try book.product("P-1")
        #expect(product.outstandingBySize == ["M": 60, "S": 5])
        #expect(throws: QueryError.self) { try book.customer("C-404") }
        #expect(try book.customer("C-1").requests.total == 3)
        #expect(book.insights(by: .region, range: TimeRange()).first?.key == "North")
        // A range: only requests made in it.
        let march5 = try #require(Timestamp.parse("2026-03-05T00:00:00Z"))
        #expect(book.dashboard(range: TimeRange(from: march5), now: now).requests == 2)
    }

    /// A snapshot is never applied to a log whose history differs from its own.
    @Test func snapshotsOfAnotherLogOrAnotherHistoryAreNotTrusted() async throws {
        let dir = freshDirectory()
        let other = freshDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        #expect(try await ingest(setupLines, into: dir).appended == 5)
        let snapshots = SnapshotDirectory(root: dir + "/views", name: RecordsView.name)
        var reader = try await EventReader.open(at: dir)
        let (view, _) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        try snapshots.write(view, logID: reader.log.manifest.logID)
        // Another log in its place: different id (and different content).
        let renamed = setupLines.map { $0.replacingOccurrences(of: "Ada & Co", with: "Other name") }
        #expect(try await ingest(renamed + [line("DeliveryRecorded", #""recordId":"R-1","quantity":1"#)], into: other).appended == 6)
        try FileManager.default.removeItem(atPath: dir + "/log")
        try FileManager.default.copyItem(atPath: other + "/log", toPath: dir + "/log")
        reader = try await EventReader.open(at: dir)
        let (loaded, report) = try Projection.load(RecordsView.self, reader: reader, snapshots: snapshots)
        #expect(report.snapshot == nil, "a snapshot of another log is skipped")
        #expect(report.skipped.first?.description.contains("another log") == true)
        #expect(loaded.view.tenants["acme"]?.customers["C-1"]?.name.hasPrefix("Other name") == true)
        #expect(loaded.view.tenants["acme"]?.records["R-1"]?.delivered == 1)
    }
}
