import EventStore
import Foundation
import Hummingbird
import OutOfStock
import RecordsView

/// The query string of the query routes, named as the CLI's options are: `range=today |
/// this-week | this-month`, or `from`/`to` (RFC 3339 or YYYY-MM-DD); `now` (ageing is
/// measured at); and the records list's `customer`, `product`, `status`, `delivery`,
/// `search`, `sort`, `limit`, `cursor`.
enum QueryParameters {
    static func range(_ request: Request) throws -> (TimeRange, now: Int64) {
        let query = request.uri.queryParameters
        let now = try query["now"].map { try time(String($0), "now") } ?? EventStore.wallClockMicroseconds()
        if let named = query["range"] {
            guard query["from"] == nil && query["to"] == nil else { throw Problem(.badRequest, "give range or from/to, not both") }
            switch named {
            case "today": return (CalendarRange.today.range(at: now), now)
            case "this-week": return (CalendarRange.thisWeek.range(at: now), now)
            case "this-month": return (CalendarRange.thisMonth.range(at: now), now)
            default: throw Problem(.badRequest, "range=\(named): use today, this-week or this-month")
            }
        }
        return (TimeRange(from: try query["from"].map { try time(String($0), "from") }, to: try query["to"].map { try time(String($0), "to") }), now)
    }

    static func recordFilter(_ request: Request) throws -> RecordFilter {
        let query = request.uri.queryParameters
        var filter = RecordFilter()
        filter.customerId = query["customer"].map(String.init)
        filter.productId = query["product"].map(String.init)
        if let status = query["status"] {
            guard let s = RecordStatus(rawValue: String(status)) else { throw Problem(.badRequest, "status=\(status): use \(RecordStatus.allCases.map(\.rawValue).joined(separator: ", "))") }
            filter.status = s
        }
        if let delivery = query["delivery"] {
            guard let d = DeliveryState(rawValue: String(delivery)) else { throw Problem(.badRequest, "delivery=\(delivery): use \(DeliveryState.allCases.map(\.rawValue).joined(separator: ", "))") }
            filter.deliveryState = d
        }
        let sort = query["sort"].map(String.init) ?? "newest"
        guard sort == "newest" || sort == "oldest" else { throw Problem(.badRequest, "sort=\(sort): use newest or oldest") }
        filter.newestFirst = sort == "newest"
        filter.search = query["search"].map(String.init)
        filter.limit = try TenantRoutes.integer(request, "limit", default: 50, 1...1_000)
        filter.cursor = query["cursor"].map(String.init)
        filter.range = try range(request).0
        return filter
    }

    static func time(_ text: String, _ name: String) throws -> Int64 {
        if let t = Timestamp.parseTimeOrDate(text) { return t }
        throw Problem(.badRequest, "\(name)=\(text): not a time; use RFC 3339 (2026-11-22T09:41:07Z) or a date (2026-11-22)")
    }
}
