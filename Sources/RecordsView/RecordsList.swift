#if canImport(Glibc)
import Glibc
#endif
import KVStore
import OutOfStock

extension RecordsQueries {
    /// A page of the records list (domain.md): every filter, newest or oldest first, a page
    /// of up to 1,000, the total of matches, and a cursor.
    ///
    /// Candidates come from the narrowest source the filter allows: the postings of its
    /// customer, product or search words (intersected), else the time index itself. Totals
    /// of a filter on status or delivery state alone over whole days come from the day
    /// tallies, so a page of a large tenant costs its page, not the tenant.
    public func records(_ filter: RecordFilter) throws -> RecordPage {
        let limit = max(1, min(filter.limit, 1_000))
        var cursor: RequestKey?
        if let text = filter.cursor {
            let parts = text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { throw QueryError(description: "bad cursor \"\(text)\": use the nextCursor of a previous page") }
            cursor = RequestKey(requestedAt: t, id: String(parts[1]))
        }
        func afterCursor(_ key: RequestKey) -> Bool {
            guard let cursor else { return true }
            return filter.newestFirst ? key < cursor : cursor < key
        }
        func wanted(_ c: RequestColumns) -> Bool {
            (filter.status.map { c.status == $0 } ?? true) && (filter.deliveryState.map { c.deliveryState == $0 } ?? true)
                && (filter.customerId.map { c.customerId == $0 } ?? true) && (filter.productId.map { c.productId == $0 } ?? true)
        }
        var page: [(RequestKey, RequestColumns)] = []
        var more = false

        if let candidates = try candidates(filter) {
            let ordered = filter.newestFirst ? Array(candidates.reversed()) : candidates
            if filter.status == nil && filter.deliveryState == nil {
                // Postings are exact for customer, product and words: the total is their
                // count, and only the page's rows are read.
                let start = cursor.map { c in ordered.firstIndex { afterCursor($0) } ?? ordered.count } ?? 0
                for key in ordered[start...] {
                    if page.count == limit { more = true; break }
                    guard let c = try columns(key.requestedAt, key.id) else {
                        throw ViewDamage(view: RecordsProjector.name, "request \(key.id) of tenant \(tenant) is posted but has no columns")
                    }
                    page.append((key, c))
                }
                return RecordPage(total: ordered.count, records: try summaries(page), nextCursor: more ? page.last.map { "\($0.0.requestedAt):\($0.0.id)" } : nil)
            }
            // A status or delivery state: every candidate's columns are read (the total needs them all).
            var total = 0
            for key in ordered {
                guard let c = try columns(key.requestedAt, key.id), wanted(c) else { continue }
                total += 1
                guard afterCursor(key) else { continue }
                if page.count < limit { page.append((key, c)) } else { more = true }
            }
            return RecordPage(total: total, records: try summaries(page), nextCursor: more ? page.last.map { "\($0.0.requestedAt):\($0.0.id)" } : nil)
        }

        // The time index: the page is read from the cursor on; the total comes from tallies.
        let total = try countInRange(filter)
        var range = filter.range
        if let cursor {
            if filter.newestFirst { range.to = min(range.to ?? .max, cursor.requestedAt &+ 1) } else { range.from = max(range.from ?? .min, cursor.requestedAt) }
        }
        try scanRequests(range, reverse: filter.newestFirst) { at, id, value in
            let key = RequestKey(requestedAt: at, id: id)
            guard afterCursor(key) else { return true }
            if filter.status != nil || filter.deliveryState != nil {
                guard let status = RequestColumns.peekStatus(value) else { return true }
                if let s = filter.status, status != s { return true }
                if filter.deliveryState != nil {
                    let c = try RequestColumns(decoding: value)
                    guard wanted(c) else { return true }
                }
            }
            if page.count == limit {
                more = true
                return false
            }
            page.append((key, try RequestColumns(decoding: value)))
            return true
        }
        return RecordPage(total: total, records: try summaries(page), nextCursor: more ? page.last.map { "\($0.0.requestedAt):\($0.0.id)" } : nil)
    }

    private func summaries(_ page: [(RequestKey, RequestColumns)]) throws -> [RecordSummary] {
        try page.compactMap { key, c in try summary(key.requestedAt, key.id, c) }
    }

    /// Requests in the filter's range with its status and delivery state: whole days from
    /// the day tallies, the partial days at the ends from their requests.
    private func countInRange(_ filter: RecordFilter) throws -> Int {
        func counted(_ t: Tally) -> Int64 {
            switch (filter.status, filter.deliveryState) {
            case (nil, nil): t.requests
            case let (s?, nil): t.count(s)
            case let (nil, d?): d == .done ? t.count(.done) + t.deleted : t.count(d)
            case let (s?, d?):
                // Both: a status fixes the delivery state except for pending.
                s == .pending ? (d == .done ? 0 : t.count(d)) : (d == .done ? t.count(s) : 0)
            }
        }
        func countScan(_ range: TimeRange) throws -> Int64 {
            var n: Int64 = 0
            try scanRequests(range) { _, _, value in
                let c = try RequestColumns(decoding: value)
                if (filter.status.map { c.status == $0 } ?? true) && (filter.deliveryState.map { c.deliveryState == $0 } ?? true) { n += 1 }
                return true
            }
            return n
        }
        let day: Int64 = 86_400_000_000
        let from = filter.range.from, to = filter.range.to
        if let from, let to, from >= to { return 0 }
        // Whole days: [firstWhole, lastWhole]; the rest is scanned.
        let firstWhole = from.map { t in ViewKey.day(of: t) + (t == ViewKey.day(of: t) * day ? 0 : 1) }
        let lastWhole = to.map { t in ViewKey.day(of: t) - 1 }
        if let firstWhole, let lastWhole, firstWhole > lastWhole {
            return Int(try countScan(filter.range))
        }
        var n: Int64 = 0
        if from == nil && to == nil {
            n = counted(try totals().tally)
        } else {
            try days(from: firstWhole, through: lastWhole) { _, t in
                n += counted(t)
                return true
            }
        }
        if let from, let firstWhole { n += try countScan(TimeRange(from: from, to: firstWhole &* day)) }
        if let to, let lastWhole { n += try countScan(TimeRange(from: (lastWhole + 1) &* day, to: to)) }
        return Int(n)
    }

    /// The requests the filter's customer, product and words allow, in (time, id) order, or
    /// nil when the filter names none of them.
    private func candidates(_ filter: RecordFilter) throws -> [RequestKey]? {
        var lists: [[RequestKey]] = []
        if let customer = filter.customerId { lists.append(try postings(ViewKey.customerPosting, customer, filter.range)) }
        if let product = filter.productId { lists.append(try postings(ViewKey.productPosting, product, filter.range)) }
        for word in Set(SearchText.words(filter.search ?? "")) { lists.append(try matching(word, filter.range)) }
        guard var result = lists.min(by: { $0.count < $1.count }) else { return nil }
        // Every list is in (time, id) order without repeats: intersect by merging.
        for list in lists where list.count != result.count || list != result {
            var kept: [RequestKey] = []
            var j = 0
            for key in result {
                while j < list.count && list[j] < key { j += 1 }
                if j < list.count && list[j] == key { kept.append(key) }
            }
            result = kept
        }
        return result
    }

    /// The months of postings that may hold requests of `range`, oldest first.
    func months(_ range: TimeRange) throws -> [UInt16] {
        let totals = try self.totals()
        guard totals.firstRequestAt <= totals.lastRequestAt else { return [] }
        let first = max(totals.firstRequestAt, range.from ?? .min)
        let last = min(totals.lastRequestAt, (range.to ?? .max) &- 1)
        guard first <= last else { return [] }
        return Array(ViewKey.month(of: first)...ViewKey.month(of: last))
    }

    /// A customer's or product's requests in `range`, in (time, id) order.
    func postings(_ kind: UInt8, _ party: String, _ range: TimeRange) throws -> [RequestKey] {
        var out: [RequestKey] = []
        for month in try months(range) {
            var prefix = ViewKey.prefix(tenant, kind, month: month)
            prefix.append(contentsOf: party.utf8)
            prefix.append(0)
            try collect(prefix, range, into: &out)
        }
        return out
    }

    /// The requests under `prefix` + time + id whose time is in `range` (a new iterator).
    private func collect(_ prefix: [UInt8], _ range: TimeRange, into out: inout [RequestKey]) throws {
        let it = snapshot.makeIterator(lower: prefix, upper: ViewKey.end(of: prefix))
        try collect(prefix, range, with: it, into: &out)
    }

    /// The same with an iterator the caller reuses for many prefixes (its bounds must hold them).
    private func collect(_ prefix: [UInt8], _ range: TimeRange, with it: KVIterator, into out: inout [RequestKey]) throws {
        var lower = prefix
        if let from = range.from { ViewKey.appendTime(from, to: &lower) }
        try it.seek(lower)
        while it.isValid {
            guard it.key.count >= prefix.count + 8, ViewKey.hasPrefix(it.key, prefix) else { return }
            let (at, id) = RowKeys.timeAndID(it.key, after: prefix.count)
            if let to = range.to, at >= to { return }
            out.append(RequestKey(requestedAt: at, id: id))
            try it.next()
        }
    }

    /// Requests with a word that starts with `word` in a recorded name or in the notes, in
    /// (time, id) order, each once. The words of names are indexed once per distinct name
    /// (`N`), and requests by the names they were recorded with (`M`); notes by word (`W`).
    private func matching(_ word: String, _ range: TimeRange) throws -> [RequestKey] {
        var found: [RequestKey] = []
        let months = try self.months(range)
        var years: [UInt16] = []
        for month in months where years.last != month / 12 { years.append(month / 12) }
        // Names whose words start with `word`.
        var names = Set<String>()
        let wordsPrefix = ViewKey.prefix(tenant, ViewKey.nameWord) + Array(word.utf8)
        let it = snapshot.makeIterator(lower: wordsPrefix, upper: ViewKey.end(of: ViewKey.prefix(tenant, ViewKey.nameWord)))
        try it.seekToFirst()
        let base = wordsPrefix.count - word.utf8.count
        while it.isValid {
            let rest = UnsafeRawBufferPointer(rebasing: it.key[base...])
            guard let zero = rest.firstIndex(of: 0) else { break }
            let token = String(decoding: UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<zero]), as: UTF8.self)
            // Sorted keys: the words with this prefix are contiguous (as bytes); the check is
            // the same `hasPrefix` the reference search uses.
            guard token.utf8.starts(with: word.utf8) else { break }
            if token.hasPrefix(word) { names.insert(String(decoding: UnsafeRawBufferPointer(rebasing: rest[(zero + 1)...]), as: UTF8.self)) }
            try it.next()
        }
        if !names.isEmpty {
            let kind = ViewKey.prefix(tenant, ViewKey.namePosting)
            let postings = snapshot.makeIterator(lower: kind, upper: ViewKey.end(of: kind))
            for name in names.sorted() {
                for year in years { try collect(RowKeys.namePostingPrefix(tenant, year * 12, name), range, with: postings, into: &found) }
            }
        }
        // Notes words starting with `word`, month by month.
        for month in months {
            let prefix = RowKeys.notesWordPrefix(tenant, month, word)
            let monthEnd = ViewKey.end(of: ViewKey.prefix(tenant, ViewKey.notesWord, month: month))
            let it = snapshot.makeIterator(lower: prefix, upper: monthEnd)
            try it.seekToFirst()
            let start = prefix.count - word.utf8.count
            while it.isValid {
                let rest = UnsafeRawBufferPointer(rebasing: it.key[start...])
                guard let zero = rest.firstIndex(of: 0) else { break }
                let token = String(decoding: UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<zero]), as: UTF8.self)
                guard token.utf8.starts(with: word.utf8) else { break }
                if token.hasPrefix(word) {
                    let at = ViewKey.time(it.key, at: start + zero + 1)
                    let id = String(decoding: UnsafeRawBufferPointer(rebasing: it.key[(start + zero + 9)...]), as: UTF8.self)
                    if range.contains(at) { found.append(RequestKey(requestedAt: at, id: id)) }
                }
                try it.next()
            }
        }
        found.sort()
        var unique: [RequestKey] = []
        unique.reserveCapacity(found.count)
        for key in found where unique.last != key { unique.append(key) }
        return unique
    }
}

extension RequestKey: Hashable {
    public func hash(into hasher: inout Hasher) {
        hasher.combine(requestedAt)
        hasher.combine(id)
    }
}
