import DataGenerator
import EventLog
import EventStore
import Foundation
import KVStore
import OutOfStock
import Projections
import StorageSimulator
import Testing
@testable import RecordsView

/// The view kept up event by event — across commits, reopens, readers and crashes — holds
/// exactly the rows of a view rebuilt from the whole log.
@Suite(.serialized) struct MaintenanceTests {
    @Test func keptUpInPiecesEqualsARebuildRowForRow() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = generatedLines(events: 4_000, seed: 3)
        var checked = 0
        for part in 0..<5 {
            try await ingest(Array(lines[(part * lines.count / 5)..<((part + 1) * lines.count / 5)]), into: dir)
            let source = try await EventReader.open(at: dir)
            // A reader applies the new events in memory and answers like the writer will.
            let reader = try RecordsViewAccess.open(root: dir, source: source, options: smallViewOptions())
            let inMemory = try rows(reader.view.snapshot())
            try reader.close()
            let (applied, reset) = try RecordsViewAccess.update(root: dir, source: source, options: smallViewOptions())
            // The first reader found no view and built it (as a writer); later ones left the
            // new events to the update.
            #expect(applied == (part == 0 ? 0 : Int64((part + 1) * lines.count / 5 - part * lines.count / 5)) && reset == nil)
            let writer = try MaintainedView<RecordsProjector>.openReader(root: dir, source: source, options: smallViewOptions())
            let kept = try rows(writer.snapshot())
            try writer.close()
            #expect(sameRows(kept, inMemory), "a reader's in-memory catch-up equals the writer's: \(firstDifference(kept, inMemory))")
            let rebuilt = try rebuiltRows(source)
            #expect(sameRows(kept, rebuilt), "part \(part): \(firstDifference(kept, rebuilt))")
            checked += kept.count
        }
        #expect(checked > 10_000)
    }

    /// Partitions applied in another order (and interleaved batch by batch) give the same rows.
    @Test func laneOrderDoesNotMatter() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await ingest(generatedLines(events: 2_500, seed: 5), into: dir)
        let source = try await EventReader.open(at: dir)
        let expected = try rebuiltRows(source)
        let root = freshDirectory("reversed")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let view = try MaintainedView<RecordsProjector>.openWriter(root: root, source: source, options: smallViewOptions())
        // Lanes backwards, half of each first, then the rest.
        let ends = try source.endOffsets()
        var limit = ends.map { $0 / 2 }
        for lane in ends.indices.reversed() {
            var upTo = view.checkpoint.positions
            upTo[lane] = limit[lane]
            try view.catchUp(upTo: upTo)
        }
        limit = ends
        try view.catchUp(upTo: limit)
        try view.close()
        let reader = try MaintainedView<RecordsProjector>.openReader(root: root, source: source, options: smallViewOptions())
        defer { try? reader.close() }
        let got = try rows(reader.snapshot())
        #expect(sameRows(got, expected), "\(firstDifference(got, expected))")
    }

    /// A tally that disagrees with the rows (here set to zero behind the view's back) is
    /// found when a change would count it below zero: the update fails naming the tally,
    /// instead of storing a negative count that every dashboard would then show.
    @Test func aTallyCountedBelowZeroIsReportedAsDamage() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await ingest([
            line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"Ada""#),
            line("ProductRegistered", #""productId":"P-1","sku":"TS-1","name":"T-shirt","sizes":["M"]"#),
            line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":3"#),
        ], into: dir)
        let source = try await EventReader.open(at: dir)
        _ = try RecordsViewAccess.update(root: dir, source: source, options: smallViewOptions())
        let views = ViewDirectory(root: dir, name: RecordsProjector.name)
        let generation = try #require(views.current())
        let store = try KVStore.open(at: views.path(of: generation), options: smallViewOptions())
        try store.put(RowKeys.customerTally("acme", "C-1"), GroupTally().encoded())
        try store.freeze(metadata: store.committedMetadata)
        try store.close()
        try await ingest([line("OutOfStockDeleted", #""recordId":"R-1","reason":"typo""#, at: "2026-03-02T10:00:00Z")], into: dir)
        let after = try await EventReader.open(at: dir)
        do {
            _ = try RecordsViewAccess.update(root: dir, source: after, options: smallViewOptions())
            Issue.record("a pending count of -1 was stored")
        } catch let damage as ViewDamage {
            #expect(damage.description.contains("customer C-1 of tenant acme counts below zero"), "\(damage)")
        }
    }

    /// Hand-checked figures of a small book.
    @Test func queriesAnswerFromTheView() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = [
            line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"Ada & Co, \"Ltd\"","region":"North""#),
            line("ProductRegistered", #""productId":"P-1","sku":"TS-1","name":"T-shirt","sizes":["S","M","L"],"price":12.5"#),
            line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":100"#),
            line("DeliveryRecorded", #""recordId":"R-1","quantity":40"#, at: "2026-03-02T10:00:00Z"),
            line("OutOfStockReported", #""recordId":"R-2","customerId":"C-1","productId":"P-1","size":"S","quantity":5,"notes":"urgent shop opening""#, at: "2026-03-05T10:00:00Z"),
            line("OutOfStockReported", #""recordId":"R-3","customerId":"C-1","productId":"P-1","size":"L","quantity":7"#, at: "2026-03-06T10:00:00Z"),
            line("DeliveryRecorded", #""recordId":"R-3","quantity":7"#, at: "2026-03-08T10:00:00Z"),
        ]
        #expect(try await ingest(lines, into: dir).rejected == 0)
        let source = try await EventReader.open(at: dir)
        let access = try RecordsViewAccess.open(root: dir, source: source, options: smallViewOptions())
        defer { try? access.close() }
        let view = access.queries(tenant: "acme")
        // R-1 is 16 days old (overdue), R-2 12 days (due soon).
        let now = try #require(Timestamp.parse("2026-03-17T00:00:00Z"))
        let d = try view.dashboard(range: TimeRange(), now: now)
        #expect(d.requests == 3)
        #expect(d.byStatus == ["pending": 2, "completed": 1])
        #expect(d.byDeliveryState == ["partial": 1, "needs-delivery": 1, "done": 1])
        #expect(d.totalQuantity == 112 && d.deliveredQuantity == 47 && d.outstandingQuantity == 65)
        #expect(d.overdue == 1 && d.dueSoon == 1)
        #expect(d.oldestPending.map(\.id) == ["R-1", "R-2"])
        #expect(d.recentCompletions.map(\.id) == ["R-3"])
        #expect(d.topCustomers.first?.name == #"Ada & Co, "Ltd""#)
        #expect(d.averageProcessingHours == 48)
        var filter = RecordFilter()
        filter.search = "URG"
        #expect(try view.records(filter).records.map(\.id) == ["R-2"])
        filter = RecordFilter()
        filter.limit = 2
        let page1 = try view.records(filter)
        #expect(page1.total == 3 && page1.records.map(\.id) == ["R-3", "R-2"])
        filter.cursor = page1.nextCursor
        let page2 = try view.records(filter)
        #expect(page2.records.map(\.id) == ["R-1"] && page2.nextCursor == nil)
        filter.cursor = "garbage"
        #expect(throws: QueryError.self) { try view.records(filter) }
        #expect(try view.product("P-1").outstandingBySize == ["M": 60, "S": 5])
        #expect(throws: QueryError.self) { try view.customer("C-404") }
        #expect(try view.customer("C-1").requests.total == 3)
        #expect(try view.insights(by: .region, range: TimeRange()).first?.key == "North")
        let march5 = try #require(Timestamp.parse("2026-03-05T00:00:00Z"))
        #expect(try view.dashboard(range: TimeRange(from: march5), now: now).requests == 2)
        let row = try #require(try view.record("R-3"))
        let history = try source.readEvent(at: Position(partition: source.lane(tenant: "acme", stream: "record/R-3"), offset: row.head))
        #expect(history.type == "DeliveryRecorded" && history.streamVersion == 2)
    }

    /// A view made from another log, or from a history since rewritten, is never continued:
    /// the writer starts a new generation and says why; a reader refuses it.
    @Test func viewsOfAnotherLogAreNotTrusted() async throws {
        let dir = freshDirectory(), other = freshDirectory("other")
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        let setup = [
            line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"First name""#),
            line("ProductRegistered", #""productId":"P-1","sku":"TS-1","name":"T-shirt","sizes":["M"]"#),
            line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":10"#),
        ]
        try await ingest(setup, into: dir)
        try RecordsViewAccess.update(root: dir, source: try await EventReader.open(at: dir), options: smallViewOptions())
        try await ingest(setup.map { $0.replacingOccurrences(of: "First name", with: "Other name") }
            + [line("DeliveryRecorded", #""recordId":"R-1","quantity":1"#)], into: other)
        try FileManager.default.removeItem(atPath: dir + "/log")
        try FileManager.default.copyItem(atPath: other + "/log", toPath: dir + "/log")
        let source = try await EventReader.open(at: dir)
        #expect {
            _ = try MaintainedView<RecordsProjector>.openReader(root: dir, source: source, options: smallViewOptions())
        } throws: { error in
            guard case let .needsRebuild(reason) = error as? ViewError else { return false }
            return reason.contains("another log")
        }
        let access = try RecordsViewAccess.open(root: dir, source: source, options: smallViewOptions())
        defer { try? access.close() }
        #expect(access.notes.contains { $0.contains("rebuilt") && $0.contains("another log") }, "\(access.notes)")
        let row = try #require(try access.queries(tenant: "acme").record("R-1"))
        #expect(row.customerName == "Other name" && row.delivered == 1)
    }

    /// Power cuts at random moments while the view is kept up: after each restart the view
    /// holds exactly a committed state (its rows match its checkpoint), and catching up from
    /// there ends with the rows of a rebuild.
    @Test(arguments: Array(UInt64(1)...UInt64(ProcessInfo.processInfo.environment["BACKORDER_VIEW_CRASH_SEEDS"].flatMap { UInt64($0) } ?? 6)))
    func powerCutsWhileMaintainingLeaveAConsistentView(seed: UInt64) async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await ingest(generatedLines(events: 3_000, seed: seed), into: dir)
        let source = try await EventReader.open(at: dir)
        let expected = try rebuiltRows(source)
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed)
        var options = smallViewOptions()
        options.memtableBytes = 64 << 10
        let ends = try source.endOffsets()
        var cuts = 0
        for round in 0..<6 {
            storage.crash(afterOperations: Int.random(in: 3...40, using: &random), seed: seed &* 31 &+ UInt64(round))
            do {
                let view = try MaintainedView<RecordsProjector>.openWriter(root: "/sim", source: source, options: options, storage: storage,
                                                                           lockTimeoutMilliseconds: 0)
                // Part of the log each round, so that commits land at many positions.
                let upTo = ends.map { min($0, Int64(round + 1) * $0 / 5) }
                try view.catchUp(upTo: zip(upTo, view.checkpoint.positions).map { max($0, $1) })
                try view.close()
            } catch {
                cuts += 1
            }
        }
        // No more cuts: open, check the committed state against a rebuild up to its positions, finish.
        storage.crash(afterOperations: Int.max / 2, seed: 0)
        let view = try MaintainedView<RecordsProjector>.openWriter(root: "/sim", source: source, options: options, storage: storage, lockTimeoutMilliseconds: 0)
        let committed = try rows(view.snapshot())
        let partial = try MaintainedView<RecordsProjector>.scratch(at: freshDirectory("partial"), source: source, upTo: view.checkpoint.positions, options: options)
        let partialRows = try rows(partial.snapshot())
        try partial.discardScratch()
        #expect(sameRows(committed, partialRows), "seed \(seed): the committed rows are not those of their checkpoint: \(firstDifference(committed, partialRows))")
        try view.catchUp()
        let final = try rows(view.snapshot())
        try view.close()
        #expect(sameRows(final, expected), "seed \(seed): \(firstDifference(final, expected))")
        #expect(cuts > 0, "seed \(seed): the power never went off")
    }
}

/// Deciding from the view (`ViewStateLookup`) accepts and rejects exactly what deciding
/// from the log does.
@Suite(.serialized) struct ViewStateLookupTests {
    @Test func decisionsFromTheViewEqualDecisionsFromTheLog() async throws {
        let base = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let lines = generatedLines(events: 4_000, seed: 21)
        let first = Array(lines[..<2_500]), rest = Array(lines[2_500...])
        // Lines the rules reject, on streams the first part created.
        let bad = [
            line("DeliveryRecorded", #""recordId":"R-000001","quantity":999999"#, tenant: "t001"),
            line("OutOfStockReported", #""recordId":"R-000002","customerId":"C-000001","productId":"P-000001","quantity":1"#, tenant: "t001"),
            line("CustomerRegistered", #""customerId":"C-000001","number":"1","name":"Again""#, tenant: "t002"),
        ]
        var outcomes: [String] = []
        for useView in [false, true] {
            let dir = base + (useView ? "/view" : "/log")
            try await ingest(first, into: dir)
            let source = try await EventReader.open(at: dir)
            try RecordsViewAccess.update(root: dir, source: source, options: smallViewOptions())
            var storeOptions = StoreOptions()
            storeOptions.log.partitionCount = 4
            let store = try await EventStore.open(at: dir, options: storeOptions)
            var lookup: ViewStateLookup?
            if useView {
                let view = try MaintainedView<RecordsProjector>.openReader(root: dir, source: store.reader, options: smallViewOptions())
                lookup = ViewStateLookup(snapshot: view.snapshot())
            }
            let path = dir + "-rest.ndjson"
            try ((rest + bad).joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let fd = open(path, O_RDONLY)
            var reader = LineReader(fd: fd, name: path)
            var options = IngestOptions()
            options.skipInvalid = true
            let report = try await Ingestor(store: store, options: options, lookup: lookup).ingest(&reader)
            close(fd)
            try await store.close()
            outcomes.append("appended \(report.appended) rejected \(report.rejected): " + report.errors.map(\.description).joined(separator: " | "))
        }
        #expect(outcomes[0] == outcomes[1])
        #expect(outcomes[0].contains("rejected 3"), "\(outcomes[0])")
    }
}

/// Power cuts of the whole store — log, index and records view on one simulated disk —
/// while events are ingested and the view follows them as `append` keeps it. After every
/// restart the view holds a committed state that fits the log that survived, and is never
/// ahead of it (never reset) — with `none` durability too, since a view syncs the log
/// before it commits positions. Catching up ends with the rows of a rebuild from the
/// surviving log.
@Suite(.serialized) struct WholeStorePowerCutTests {
    static let seeds: [UInt64] = Array(1...UInt64(ProcessInfo.processInfo.environment["BACKORDER_VIEW_CRASH_SEEDS"].flatMap { UInt64($0) } ?? 6))

    /// Small files everywhere: segments roll, the index and the view flush and compact.
    static func storeOptions(fsync: Bool) -> StoreOptions {
        var options = StoreOptions()
        options.log.partitionCount = 2
        options.log.durability = fsync ? .fsync : .none
        options.log.segmentBytes = 64 << 10
        options.log.recoveryCheckpointBytes = 16 << 10
        options.log.preallocationBytes = 32 << 10
        options.log.lockTimeoutMilliseconds = 0
        options.indexMemoryBytes = 64 << 10
        return options
    }

    @Test(arguments: seeds)
    func viewsAfterPowerCutsFitTheSurvivingLogAndEqualARebuild(seed: UInt64) async throws {
        let fsync = seed % 2 == 0
        let lines = generatedLines(events: 1_500, seed: seed)
        let storage = SimulatedStorage()
        var random = SplitMix64(seed: seed &* 7_919)
        var viewOptions = smallViewOptions()
        viewOptions.memtableBytes = 64 << 10
        var ingestOptions = IngestOptions()
        ingestOptions.skipInvalid = true  // a line whose record was lost with the power is rejected; the rest go in
        ingestOptions.maxClockSkew = nil
        var next = 0, cuts = 0, resets: [String] = []
        for round in 0..<6 {
            let process = storage.currentProcess()
            let store = try await EventStore.open(at: "/sim", options: Self.storeOptions(fsync: fsync), storage: process)
            let view = try MaintainedView<RecordsProjector>.openWriter(root: "/sim", source: store.reader, options: viewOptions, storage: process,
                                                                       lockTimeoutMilliseconds: 0)
            if let reason = view.resetReason { resets.append(reason) }
            // What the view committed is the view of the log up to its checkpoint.
            let committed = try rows(view.snapshot())
            let partial = try MaintainedView<RecordsProjector>.scratch(at: freshDirectory("partial"), source: store.reader, upTo: view.checkpoint.positions,
                                                                       options: viewOptions)
            let expected = try rows(partial.snapshot())
            try partial.discardScratch()
            #expect(sameRows(committed, expected), "seed \(seed) round \(round): \(firstDifference(committed, expected))")

            storage.crash(afterOperations: Int.random(in: 40...900, using: &random), seed: random.next())
            let generation = storage.generation
            ingestOptions.storage = process
            ingestOptions.temporaryDirectory = "/sim-tmp"
            while storage.generation == generation && next < lines.count {
                let count = Int.random(in: 1...80, using: &random)
                let chunk = lines[next..<min(lines.count, next + count)]
                var reader = LineReader(bytes: Array((chunk.joined(separator: "\n") + "\n").utf8), name: "chunk")
                do {
                    _ = try await Ingestor(store: store, options: ingestOptions).ingest(&reader)
                    next += chunk.count
                    try view.catchUp()  // as `append` keeps the view: after the acknowledgement
                } catch {
                    break  // the power went off
                }
            }
            if storage.generation != generation { cuts += 1 } else { storage.crash(afterOperations: Int.max / 2, seed: 0) }  // every line sent first: no cut this round
            try? view.close()
            try? await store.close()
        }
        storage.crash(afterOperations: Int.max / 2, seed: 0)
        let process = storage.currentProcess()
        let store = try await EventStore.open(at: "/sim", options: Self.storeOptions(fsync: fsync), storage: process)
        let view = try MaintainedView<RecordsProjector>.openWriter(root: "/sim", source: store.reader, options: viewOptions, storage: process, lockTimeoutMilliseconds: 0)
        if let reason = view.resetReason { resets.append(reason) }
        try view.catchUp()
        let final = try rows(view.snapshot())
        try view.close()
        let rebuilt = try rebuiltRows(store.reader, options: viewOptions)
        try await store.close()
        #expect(sameRows(final, rebuilt), "seed \(seed): \(firstDifference(final, rebuilt))")
        #expect(cuts > 0, "seed \(seed): the power never went off")
        // The view syncs the log before it commits positions: never ahead of it, in any mode.
        #expect(resets.isEmpty, "seed \(seed): a view ahead of the log it follows: \(resets)")
        // Acknowledged means on disk in fsync mode: what was acknowledged before the last cut is there.
        if fsync { #expect(!final.isEmpty, "seed \(seed): acknowledged events survived") }
        print("whole-store power cuts, seed \(seed) (\(fsync ? "fsync" : "none")): \(cuts) cuts, \(next) lines sent, \(final.count) rows, view reset \(resets.count)×\(resets.first.map { ": " + $0 } ?? "")")
    }
}
