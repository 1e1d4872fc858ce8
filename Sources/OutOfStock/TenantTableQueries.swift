import Projections

/// The queries of domain.md answered from a query table. They give exactly what the same
/// queries give on the in-memory book (`TenantBook`), which the tests check.
extension TenantTableReader {
    typealias Section = TenantTable.Section

    /// The dashboard for `range`, with ageing measured at `now`. All time reads the stored
    /// summary and ages it; a range scans the columns of that range only.
    public func dashboard(range: TimeRange, now: Int64) throws -> Dashboard {
        let rowSummary: (UInt32) throws -> RecordSummary? = { RecordSummary(try self.row(Int($0))) }
        let party: (UInt32, Bool) throws -> (id: String, name: String) = { ordinal, isCustomer in
            if isCustomer {
                let c = try self.customer(Int(ordinal))
                return (c.id, c.row?.name ?? c.id)
            }
            let p = try self.product(Int(ordinal))
            return (p.id, p.row?.name ?? p.id)
        }
        guard range.from != nil || range.to != nil else {
            var parts: DashboardParts<UInt32, UInt32>
            do { parts = try TenantTable.decodeSummary(Array(try file.section(Section.summary))) } catch let error as ProjectionError {
                throw error
            } catch {
                throw bad("summary does not decode")
            }
            // Pending requests' times, ascending (rows are in time order): ageing is two searches.
            let pending = try file.integers(Section.pendingTimes, as: Int64.self)
            func pendingBefore(_ t: Int64) -> Int { pending.lowerBound(of: t, in: 0..<pending.count) }
            let (overdueBefore, dueSoonBefore) = DashboardBuilder<UInt32, UInt32>.ageingBounds(now)
            parts.totals.overdue = pendingBefore(overdueBefore)
            parts.totals.dueSoon = pendingBefore(dueSoonBefore) - parts.totals.overdue
            return try parts.dashboard(row: rowSummary, party: party)
        }
        let requestedAt = try column(Section.requestedAt, Int64.self)
        let rows = ordinals(in: range, requestedAt)
        let status = try statuses(), completedAt = try column(Section.completedAt, Int64.self)
        let quantity = try column(Section.quantity, Int64.self), delivered = try column(Section.delivered, Int64.self)
        let customer = try column(Section.customer, UInt32.self), product = try column(Section.product, UInt32.self)
        var builder = DashboardBuilder<UInt32, UInt32>()
        for i in rows {
            let done = completedAt[i]
            builder.add(UInt32(i), requestedAt: requestedAt[i], status: RecordStatus.allCases[Int(status[i])], quantity: quantity[i],
                        delivered: delivered[i], completedAt: done == .min ? nil : done, customer: customer[i], product: product[i])
        }
        return try builder.finish(now: now, row: rowSummary, party: party)
    }

    /// The ordinals of the requests made in `range` (they are sorted by request time).
    private func ordinals(in range: TimeRange, _ requestedAt: IntegerColumn<Int64>) -> Range<Int> {
        let low = range.from.map { requestedAt.lowerBound(of: $0, in: 0..<rowCount) } ?? 0
        let high = range.to.map { requestedAt.lowerBound(of: $0, in: low..<rowCount) } ?? rowCount
        return low..<max(low, high)
    }

    /// A page of the records list.
    public func records(_ filter: RecordFilter) throws -> RecordPage {
        let requestedAt = try column(Section.requestedAt, Int64.self)
        let inRange = ordinals(in: filter.range, requestedAt)
        // Candidates: postings of the customer, the product, and every search word.
        var list: [UInt32]?
        if let id = filter.customerId { list = try postings(of: id, in: Section.customers) }
        if let id = filter.productId { list = intersect(list, try postings(of: id, in: Section.products)) }
        for word in SearchText.words(filter.search ?? "") { list = intersect(list, try postings(matchingPrefix: word)) }
        let status = filter.status == nil && filter.deliveryState == nil ? nil : try statuses()
        let delivered = filter.deliveryState == nil ? nil : try column(Section.delivered, Int64.self)
        func matches(_ i: Int) -> Bool {
            guard let status else { return true }
            let s = RecordStatus.allCases[Int(status[i])]
            if let wanted = filter.status, s != wanted { return false }
            if let wanted = filter.deliveryState, let delivered {
                if DeliveryState(status: s, delivered: delivered[i]) != wanted { return false }
            }
            return true
        }
        // Requests after the cursor, in the page's order, lie on one side of `boundary`.
        var boundary: Int?
        if let cursor = filter.cursor {
            let parts = cursor.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { throw QueryError(description: "bad cursor \"\(cursor)\": use the nextCursor of a previous page") }
            boundary = try firstOrdinal(after: (t, String(parts[1])), inclusive: filter.newestFirst, requestedAt)
        }
        func afterCursor(_ i: Int) -> Bool {
            guard let boundary else { return true }
            return filter.newestFirst ? i < boundary : i >= boundary
        }
        let limit = max(1, min(filter.limit, 1_000))
        var total = 0, after = 0, page: [Int] = []
        func visit(_ i: Int) {
            guard matches(i) else { return }
            total += 1
            guard afterCursor(i) else { return }
            after += 1
            if page.count < limit { page.append(i) }
        }
        if let list {
            let low = lowerBound(list, inRange.lowerBound), high = lowerBound(list, inRange.upperBound)
            if filter.newestFirst { for k in (low..<high).reversed() { visit(Int(list[k])) } } else { for k in low..<high { visit(Int(list[k])) } }
        } else if status == nil {
            // No filter at all: the range is the answer; no request needs a look.
            total = inRange.count
            let cut = min(inRange.upperBound, max(inRange.lowerBound, boundary ?? (filter.newestFirst ? inRange.upperBound : 0)))
            let rest = filter.newestFirst ? inRange.lowerBound..<cut : cut..<inRange.upperBound
            after = max(0, rest.count)
            page = filter.newestFirst ? Array(rest.reversed().prefix(limit)) : Array(rest.prefix(limit))
        } else if filter.newestFirst {
            for i in inRange.reversed() { visit(i) }
        } else {
            for i in inRange { visit(i) }
        }
        let rows = try page.map { try row($0) }
        let next = after > limit ? rows.last.map { "\($0.requestedAt):\($0.id)" } : nil
        return RecordPage(total: total, records: rows.map(RecordSummary.init), nextCursor: next)
    }

    /// The first ordinal whose (time, id) is above `key` — or, `inclusive`, not below it:
    /// the requests of that time, then a binary search by id among them.
    private func firstOrdinal(after key: (Int64, String), inclusive: Bool, _ requestedAt: IntegerColumn<Int64>) throws -> Int {
        var low = requestedAt.lowerBound(of: key.0, in: 0..<rowCount)
        var high = key.0 == .max ? rowCount : requestedAt.lowerBound(of: key.0 + 1, in: low..<rowCount)
        while low < high {
            let mid = (low + high) / 2
            let id = try rowID(mid)
            if inclusive ? id < key.1 : id <= key.1 { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private func postings(of key: String, in base: UInt32) throws -> [UInt32] {
        let keys = try keyedPostings(base)
        guard let index = try keys.find(key) else { return [] }
        return try keys.postings(index, rows: rowCount)
    }

    /// Requests with a word that starts with `prefix`: the union of the postings of a
    /// range of sorted tokens, gathered in a bitmap.
    private func postings(matchingPrefix prefix: String) throws -> [UInt32] {
        let tokens = try keyedPostings(Section.tokens)
        var bits = [UInt64](repeating: 0, count: (rowCount + 63) / 64)
        var index = try tokens.lowerBound(prefix)
        while index < tokens.count {
            let token = try tokens.key(index)
            // Sorted keys: the tokens with this prefix are contiguous (as scalars); the check
            // is the same `hasPrefix` the in-memory search uses.
            guard token.unicodeScalars.starts(with: prefix.unicodeScalars) else { break }
            if token.hasPrefix(prefix) {
                for ordinal in try tokens.postings(index, rows: rowCount) { bits[Int(ordinal) >> 6] |= 1 << (UInt64(ordinal) & 63) }
            }
            index += 1
        }
        var list: [UInt32] = []
        for (w, word) in bits.enumerated() where word != 0 {
            var rest = word
            while rest != 0 {
                list.append(UInt32(w << 6 + rest.trailingZeroBitCount))
                rest &= rest - 1
            }
        }
        return list
    }

    private func intersect(_ a: [UInt32]?, _ b: [UInt32]) -> [UInt32] {
        guard let a else { return b }
        var out: [UInt32] = [], i = 0, j = 0
        while i < a.count && j < b.count {
            if a[i] < b[j] { i += 1 } else if a[i] > b[j] { j += 1 } else { out.append(a[i]); i += 1; j += 1 }
        }
        return out
    }

    private func lowerBound(_ list: [UInt32], _ ordinal: Int) -> Int {
        var low = 0, high = list.count
        while low < high {
            let mid = (low + high) / 2
            if Int(list[mid]) < ordinal { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// One request's current state.
    public func record(_ id: String) throws -> RecordRow? {
        try ordinal(ofRecord: id).map { try row($0) }
    }

    /// A customer's details, counts and requests (newest first).
    public func customer(_ id: String, limit: Int = 50) throws -> CustomerReport {
        let customers = try keyedPostings(Section.customers)
        guard let index = try customers.find(id), let c = try customer(index).row else { throw QueryError(description: "unknown customer \(id)") }
        var filter = RecordFilter()
        filter.customerId = id
        filter.limit = limit
        let page = try records(filter)
        let status = try statuses()
        var counts: [String: Int] = [:]
        for ordinal in try customers.postings(index, rows: rowCount) { counts[RecordStatus.allCases[Int(status[Int(ordinal)])].rawValue, default: 0] += 1 }
        return CustomerReport(id: c.id, number: c.number, name: c.name, region: c.region, city: c.city, removed: c.removed,
                              byStatus: counts, requests: page)
    }

    /// A product's backlog: outstanding per size and customers waiting.
    public func product(_ id: String) throws -> ProductReport {
        let products = try keyedPostings(Section.products)
        guard let index = try products.find(id), let p = try product(index).row else { throw QueryError(description: "unknown product \(id)") }
        let status = try statuses(), customer = try column(Section.customer, UInt32.self), size = try column(Section.size, UInt16.self)
        let quantity = try column(Section.quantity, Int64.self), delivered = try column(Section.delivered, Int64.self)
        let sizeNames = try self.sizeNames()
        var bySize: [String: Int64] = [:], waiting: [UInt32: Int64] = [:]
        for ordinal in try products.postings(index, rows: rowCount) where status[Int(ordinal)] == UInt8(RecordStatus.pending.index) {
            let i = Int(ordinal), outstanding = quantity[i] &- delivered[i]
            let number = Int(size[i])
            guard number == Int(UInt16.max) || number < sizeNames.count else { throw bad("request \(i) has size number \(number) of \(sizeNames.count)") }
            bySize[number == Int(UInt16.max) ? "-" : sizeNames[number], default: 0] += outstanding
            waiting[customer[i], default: 0] += outstanding
        }
        let ranked = try waiting.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ordinal, outstanding in
            let c = try self.customer(Int(ordinal))
            return Ranked(id: c.id, name: c.row?.name ?? c.id, outstanding: outstanding)
        }
        return ProductReport(id: p.id, sku: p.sku, name: p.name, sizes: p.sizes, removed: p.removed,
                             outstandingBySize: bySize, outstanding: bySize.values.reduce(0, +), customersWaiting: ranked)
    }

    /// Insights grouped by region, product or customer.
    public func insights(by dimension: InsightDimension, range: TimeRange) throws -> [InsightRow] {
        struct Group { var count = 0; var customers = Set<UInt32>(); var quantity: Int64 = 0; var last: Int64 = .min; var newest: [Int] = [] }
        let requestedAt = try column(Section.requestedAt, Int64.self), status = try statuses()
        let quantity = try column(Section.quantity, Int64.self)
        let customer = try column(Section.customer, UInt32.self), product = try column(Section.product, UInt32.self)
        var regions: [UInt32: String] = [:], partyIDs: [UInt32: String] = [:]
        var groups: [String: Group] = [:]
        let deleted = UInt8(RecordStatus.deleted.index)
        for i in ordinals(in: range, requestedAt) where status[i] != deleted {
            let key: String
            switch dimension {
            case .region:
                if regions[customer[i]] == nil { regions[customer[i]] = try self.customer(Int(customer[i])).row?.region ?? "(none)" }
                key = regions[customer[i]] ?? "(none)"
            case .product:
                if partyIDs[product[i]] == nil { partyIDs[product[i]] = try self.product(Int(product[i])).id }
                key = partyIDs[product[i]] ?? ""
            case .customer:
                if partyIDs[customer[i]] == nil { partyIDs[customer[i]] = try self.customer(Int(customer[i])).id }
                key = partyIDs[customer[i]] ?? ""
            }
            var g = groups[key] ?? Group()
            g.count += 1
            g.customers.insert(customer[i])
            g.quantity += quantity[i]
            if requestedAt[i] > g.last { g.last = requestedAt[i]; g.newest = [i] } else if requestedAt[i] == g.last { g.newest.append(i) }
            groups[key] = g
        }
        return try groups.map { key, g in
            // The name of the newest request (the greatest name among equally new ones).
            let name = dimension == .region ? key : try g.newest.map { i -> String in
                let r = try row(i)
                return dimension == .product ? r.productName : r.customerName
            }.max() ?? ""
            return InsightRow(key: key, name: name, requests: g.count, customers: g.customers.count, totalQuantity: g.quantity,
                              averageQuantity: (Double(g.quantity) / Double(max(g.count, 1)) * 10).rounded() / 10, lastRequest: Timestamp.format(g.last))
        }.sorted { ($0.requests, $1.key) > ($1.requests, $0.key) }
    }
}
