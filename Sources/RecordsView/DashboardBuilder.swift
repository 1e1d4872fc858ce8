import OutOfStock

/// Accumulates the dashboard over requests, whatever holds them: the in-memory book keys
/// requests by `RequestKey` (requested time, id) and parties by id, a query table by
/// ordinals, which sort exactly like those keys — so ties of the rankings are broken the
/// same way and both give the same dashboard.
struct DashboardBuilder<Row: Comparable, Party: Hashable & Comparable> {
    private var d = Dashboard()
    // Summed as integer hours-and-microseconds pairs would overflow for absurd times;
    // whole seconds in a Double are exact far beyond any real total and independent of
    // the order of the records.
    private var processing: (seconds: Double, count: Int) = (0, 0)
    // Keys only (time, row): the rows are looked up for the few that are shown.
    private var pending: [(Int64, Row)] = [], completed: [(Int64, Row)] = []
    private var customers: [Party: Int64] = [:], products: [Party: Int64] = [:], perDay: [Int64: Int] = [:], completedPerDay: [Int64: Int] = [:]

    static var day: Int64 { 86_400_000_000 }

    /// Counts one request.
    mutating func add(_ row: Row, requestedAt: Int64, status: RecordStatus, quantity: Int64, delivered: Int64,
                      completedAt: Int64?, customer: Party, product: Party) {
        d.requests += 1
        d.byStatus[status.rawValue, default: 0] += 1
        guard status != .deleted else { return }
        d.byDeliveryState[DeliveryState(status: status, delivered: delivered).rawValue, default: 0] += 1
        d.totalQuantity &+= quantity
        d.deliveredQuantity &+= delivered
        perDay[Timestamp.daysSinceEpoch(requestedAt), default: 0] += 1
        if status == .pending {
            let outstanding = quantity &- delivered
            d.outstandingQuantity &+= outstanding
            pending.append((requestedAt, row))
            customers[customer, default: 0] &+= outstanding
            products[product, default: 0] &+= outstanding
        } else if status == .completed, let done = completedAt {
            completed.append((done, row))
            completedPerDay[Timestamp.daysSinceEpoch(done), default: 0] += 1
            processing.seconds += Double(done / 1_000_000) - Double(requestedAt / 1_000_000)
            processing.count += 1
        }
    }

    /// The dashboard, with ageing measured at `now`. `row` and `party` turn keys into
    /// what is shown.
    func finish(now: Int64, row: (Row) throws -> RecordSummary?,
                party: (_ key: Party, _ isCustomer: Bool) throws -> (id: String, name: String)) rethrows -> Dashboard {
        var parts = self.parts()
        let (overdueBefore, dueSoonBefore) = Self.ageingBounds(now)
        for (t, _) in pending {
            if t < overdueBefore { parts.totals.overdue += 1 } else if t < dueSoonBefore { parts.totals.dueSoon += 1 }
        }
        return try parts.dashboard(row: row, party: party)
    }

    /// Everything but ageing, with rows and parties still as keys: what a query table
    /// stores, to be aged and shown when it is read.
    func parts() -> DashboardParts<Row, Party> {
        var totals = d
        totals.averageProcessingHours = processing.count > 0 ? (processing.seconds / Double(processing.count) / 3_600 * 1_000).rounded() / 1_000 : nil
        func dated(_ counts: [Int64: Int]) -> [String: Int] {
            Dictionary(counts.map { (Dashboard.dayKey($0.key), $0.value) }, uniquingKeysWith: +)
        }
        totals.requestsPerDay = dated(perDay)
        totals.completionsPerDay = dated(completedPerDay)
        func top(_ sums: [Party: Int64]) -> [(Party, Int64)] {
            Array(sums.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map { ($0.key, $0.value) })
        }
        return DashboardParts(totals: totals, oldestPending: Self.first(50, of: pending, by: <).map(\.1),
                              recentCompletions: Self.first(10, of: completed, by: >).map(\.1),
                              topCustomers: top(customers), topProducts: top(products))
    }

    /// Pending requests made before the first bound are overdue (older than 14 days),
    /// before the second due soon (older than 7 days).
    static func ageingBounds(_ now: Int64) -> (overdue: Int64, dueSoon: Int64) {
        func minus(_ days: Int64) -> Int64 {
            let (t, overflow) = now.subtractingReportingOverflow(days * day)
            return overflow ? .min : t
        }
        return (minus(14), minus(7))
    }

    /// The first `k` keys in the given order (ties by row), without sorting them all.
    private static func first(_ k: Int, of keys: [(Int64, Row)], by order: (Int64, Int64) -> Bool) -> [(Int64, Row)] {
        func before(_ a: (Int64, Row), _ b: (Int64, Row)) -> Bool { a.0 == b.0 ? a.1 < b.1 : order(a.0, b.0) }
        var best: [(Int64, Row)] = []
        best.reserveCapacity(k + 1)
        for key in keys {
            if best.count == k, let last = best.last, !before(key, last) { continue }
            let at = best.firstIndex { before(key, $0) } ?? best.count
            best.insert(key, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}

/// A dashboard before its rows and parties are looked up.
struct DashboardParts<Row, Party> {
    /// Counts, sums, averages and the daily trend (no rows, no rankings).
    var totals: Dashboard
    var oldestPending: [Row]
    var recentCompletions: [Row]
    var topCustomers: [(Party, Int64)]
    var topProducts: [(Party, Int64)]

    /// The dashboard, rows and parties looked up.
    func dashboard(row: (Row) throws -> RecordSummary?,
                   party: (_ key: Party, _ isCustomer: Bool) throws -> (id: String, name: String)) rethrows -> Dashboard {
        var d = totals
        d.oldestPending = try oldestPending.compactMap(row)
        d.recentCompletions = try recentCompletions.compactMap(row)
        d.topCustomers = try topCustomers.map { let p = try party($0.0, true); return Ranked(id: p.id, name: p.name, outstanding: $0.1) }
        d.topProducts = try topProducts.map { let p = try party($0.0, false); return Ranked(id: p.id, name: p.name, outstanding: $0.1) }
        return d
    }
}
