import DataGenerator
import EventLog
import EventStore
import Foundation
import KVStore
import OutOfStock
import Projections
import Testing
@testable import RecordsView

/// The key-value view answers every query exactly as the reference (the whole book folded
/// in memory and scanned) does.
@Suite(.serialized) struct QueryTests {
    /// The same value, or errors with the same message.
    func same<T: Equatable>(_ view: () throws -> T, _ book: () throws -> T, _ what: String) {
        let a = Result { try view() }, b = Result { try book() }
        switch (a, b) {
        case let (.success(x), .success(y)): #expect(x == y, "\(what)")
        case let (.failure(x), .failure(y)): #expect("\(x)" == "\(y)", "\(what)")
        default: Issue.record("\(what): view \(a), reference \(b)")
        }
    }

    @Test func everyQueryMatchesTheReference() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = generatedLines(events: 6_000)
        // Appended in three runs, the view brought up to date after each (as `append` does).
        for part in 0..<3 {
            let report = try await ingest(Array(lines[(part * lines.count / 3)..<((part + 1) * lines.count / 3)]), into: dir)
            #expect(report.rejected == 0, "\(report.errors.prefix(3))")
            let source = try await EventReader.open(at: dir)
            try RecordsViewAccess.update(root: dir, source: source, options: smallViewOptions())
        }
        let source = try await EventReader.open(at: dir)
        let access = try RecordsViewAccess.open(root: dir, source: source, options: smallViewOptions())
        defer { try? access.close() }
        let reference = try referenceView(source)
        #expect(reference.tenants.count == 2)
        #expect(try access.tenants() == reference.tenants.keys.sorted())
        for (tenant, book) in reference.tenants {
            let view = access.queries(tenant: tenant)
            let times = book.records.values.map(\.requestedAt).sorted()
            let now = (times.last ?? 0) + 3 * 86_400_000_000
            let day: Int64 = 86_400_000_000
            let ranges = [TimeRange(), TimeRange(from: times[times.count / 3]), TimeRange(to: times[times.count / 2]),
                          TimeRange(from: times[times.count / 4], to: times[times.count * 3 / 4]), TimeRange(from: now, to: now - 1),
                          TimeRange(from: times[times.count / 5] / day * day, to: times[times.count / 2] / day * day),
                          TimeRange(from: times[10] + 1, to: times[10] + 2 * 3_600_000_000)]
            for (i, range) in ranges.enumerated() {
                same({ try view.dashboard(range: range, now: now) }, { book.dashboard(range: range, now: now) }, "\(tenant) dashboard \(i)")
                for dimension in InsightDimension.allCases {
                    same({ try view.insights(by: dimension, range: range) }, { book.insights(by: dimension, range: range) }, "\(tenant) insights \(dimension) \(i)")
                }
            }
            // Ageing measured at several moments, including inside the data.
            for at in [times[times.count / 2], times[times.count / 2] + 7 * day + 1, now + 30 * day] {
                same({ try view.dashboard(range: TimeRange(), now: at) }, { book.dashboard(range: TimeRange(), now: at) }, "\(tenant) ageing at \(at)")
            }
            let sample = book.records.values.sorted { $0.id < $1.id }.enumerated().filter { $0.offset % 97 == 0 }.map(\.element)
            let words = sample.flatMap { SearchText.words(of: $0).prefix(2) }
            var filters: [RecordFilter] = [RecordFilter()]
            for (k, r) in sample.prefix(18).enumerated() {
                var f = RecordFilter()
                f.limit = 7
                f.newestFirst = k % 2 == 0
                switch k % 9 {
                case 0: f.customerId = r.customerId
                case 1: f.productId = r.productId; f.status = .pending
                case 2: f.search = String(words[k % words.count].prefix(3))
                case 3: f.search = words[k % words.count] + " " + String(words[(k + 5) % words.count].prefix(2))
                case 4: f.deliveryState = .partial; f.range = ranges[3]
                case 5: f.status = .completed; f.customerId = r.customerId; f.range = ranges[1]
                case 6: f.status = .refunded; f.range = ranges[5]
                case 7: f.deliveryState = .done; f.range = ranges[2]
                default: f.status = .pending; f.deliveryState = .needsDelivery; f.range = ranges[6]
                }
                filters.append(f)
            }
            var unknown = RecordFilter()
            unknown.customerId = "no-such-customer"
            unknown.search = "zzqx"
            filters.append(unknown)
            var answered = 0
            for (i, filter) in filters.enumerated() {
                // Walk every page: totals, rows and cursors must agree all the way.
                var filter = filter, pages = 0
                while pages < 60 {
                    let page = try view.records(filter)
                    if pages == 0 && page.total > 0 { answered += 1 }
                    same({ page }, { try book.records(filter) }, "\(tenant) records filter \(i) page \(pages)")
                    guard let next = page.nextCursor else { break }
                    filter.cursor = next
                    pages += 1
                }
            }
            #expect(answered >= filters.count / 2, "most filters find something (\(answered) of \(filters.count))")
            var bad = RecordFilter()
            bad.cursor = "yesterday"
            same({ try view.records(bad) }, { try book.records(bad) }, "bad cursor")
            for r in sample {
                same({ try view.record(r.id) }, { book.records[r.id] }, "record \(r.id)")
                same({ try view.customer(r.customerId, limit: 5) }, { try book.customer(r.customerId, limit: 5) }, "customer \(r.customerId)")
                same({ try view.product(r.productId) }, { try book.product(r.productId) }, "product \(r.productId)")
            }
            same({ try view.record("R-none") }, { book.records["R-none"] }, "unknown record")
            same({ try view.customer("C-none") }, { try book.customer("C-none") }, "unknown customer")
            same({ try view.product("P-none") }, { try book.product("P-none") }, "unknown product")
        }
    }

    /// Hand-made edge cases: equal times (ties in every ranking and in cursor paging), the
    /// same word in composed and decomposed Unicode, amendments that move a request to
    /// another customer and product, deletions of a group's newest request, refunds.
    @Test func tiesUnicodeAmendmentsAndDeletionsMatchTheReference() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = [
            line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"Zoë Café","region":"Nord""#),
            line("CustomerRegistered", #""customerId":"C-2","number":"2","name":"Cafe\u0301 Two""#),
            line("CustomerRegistered", #""customerId":"C-3","number":"3","name":"Crème brûlée AG","region":"Süd""#),
            line("ProductRegistered", #""productId":"P-1","sku":"S","name":"Parka","sizes":["M","L"]"#),
            line("ProductRegistered", #""productId":"P-2","sku":"T","name":"Café table","sizes":["M"]"#),
        ]
        let notes = ["Cafe\\u0301 au lait", "café noir", "CAFÉ", "crème brûlée", ""]
        for i in 0..<40 {
            let at = "2026-03-0\(1 + i % 6)T10:00:00Z" // many requests share a time
            let customer = ["C-1", "C-2", "C-3"][i % 3], product = ["P-1", "P-2"][i % 2]
            let note = notes[i % notes.count].isEmpty ? "" : ",\"notes\":\"\(notes[i % notes.count])\""
            lines.append(line("OutOfStockReported", "\"recordId\":\"R-\(i)\",\"customerId\":\"\(customer)\",\"productId\":\"\(product)\",\"size\":\"M\",\"quantity\":\(10 + i % 7)\(note)", at: at))
            switch i % 8 {
            case 1: lines.append(line("DeliveryRecorded", "\"recordId\":\"R-\(i)\",\"quantity\":\(10 + i % 7)", at: "2026-03-20T10:00:00Z"))
            case 2: lines.append(line("DeliveryRecorded", "\"recordId\":\"R-\(i)\",\"quantity\":3", at: "2026-03-20T10:00:00Z"))
            case 3: lines.append(line("RefundRecorded", "\"recordId\":\"R-\(i)\",\"reason\":\"late\"", at: "2026-03-21T10:00:00Z"))
            case 4: lines.append(line("OutOfStockDeleted", "\"recordId\":\"R-\(i)\"", at: "2026-03-21T10:00:00Z"))
            case 5: lines.append(line("OutOfStockAmended", "\"recordId\":\"R-\(i)\",\"customerId\":\"C-3\",\"productId\":\"P-1\",\"notes\":\"moved\"", at: "2026-03-22T10:00:00Z"))
            case 6: lines.append(line("OutOfStockClosed", "\"recordId\":\"R-\(i)\"", at: "2026-03-22T10:00:00Z"))
            default: break
            }
        }
        // The newest requests of C-1 and P-2 are deleted afterwards; C-2 is renamed.
        lines.append(line("OutOfStockDeleted", #""recordId":"R-39""#, at: "2026-03-25T10:00:00Z"))
        lines.append(line("OutOfStockDeleted", #""recordId":"R-38""#, at: "2026-03-25T10:00:00Z"))
        lines.append(line("CustomerUpdated", #""customerId":"C-2","name":"Renamed Two""#, at: "2026-03-25T10:00:00Z"))
        lines.append(line("OutOfStockReported", #""recordId":"R-99","customerId":"C-2","productId":"P-2","size":"M","quantity":5"#, at: "2026-03-26T10:00:00Z"))
        let report = try await ingest(lines, into: dir)
        #expect(report.rejected == 0, "\(report.errors.prefix(3))")
        let source = try await EventReader.open(at: dir)
        try RecordsViewAccess.update(root: dir, source: source, options: smallViewOptions())
        let access = try RecordsViewAccess.open(root: dir, source: source, options: smallViewOptions())
        defer { try? access.close() }
        let book = try #require(try referenceView(source).tenants["acme"])
        let view = access.queries(tenant: "acme")
        let now = try #require(Timestamp.parse("2026-04-01T00:00:00Z"))
        same({ try view.dashboard(range: TimeRange(), now: now) }, { book.dashboard(range: TimeRange(), now: now) }, "dashboard")
        same({ try view.dashboard(range: TimeRange(from: 0), now: now) }, { book.dashboard(range: TimeRange(from: 0), now: now) }, "dashboard range")
        for search in ["café", "Cafe\u{301}", "caf", "brû", "creme", "zoë", "renamed", "two", "moved"] {
            for newest in [true, false] {
                var filter = RecordFilter()
                filter.search = search
                filter.limit = 3
                filter.newestFirst = newest
                var pages = 0
                while pages < 30 {
                    let page = try view.records(filter)
                    same({ page }, { try book.records(filter) }, "search \(search) page \(pages)")
                    guard let next = page.nextCursor else { break }
                    filter.cursor = next
                    pages += 1
                }
            }
        }
        for customer in ["C-1", "C-2", "C-3", "C-9"] { same({ try view.customer(customer) }, { try book.customer(customer) }, "customer \(customer)") }
        for product in ["P-1", "P-2"] { same({ try view.product(product) }, { try book.product(product) }, "product \(product)") }
        for dimension in InsightDimension.allCases {
            same({ try view.insights(by: dimension, range: TimeRange()) }, { book.insights(by: dimension, range: TimeRange()) }, "insights \(dimension)")
            same({ try view.insights(by: dimension, range: TimeRange(from: 0)) }, { book.insights(by: dimension, range: TimeRange(from: 0)) }, "insights range \(dimension)")
        }
    }
}
