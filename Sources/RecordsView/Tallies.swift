import OutOfStock

/// Counts and sums over a set of requests — what the dashboard shows — kept per tenant
/// (`A`), per request day (`d`), per customer (`c`) and per product (`p`). A request
/// contributes `Tally.of(request)`; when it changes, its old contribution is subtracted
/// and its new one added, so every tally is exact after any sequence of events.
struct Tally: Equatable {
    var pending: Int64 = 0
    var completed: Int64 = 0
    var refunded: Int64 = 0
    var deleted: Int64 = 0
    /// Of the requests not deleted: nothing delivered yet, partly delivered.
    var needsDelivery: Int64 = 0
    var partial: Int64 = 0
    /// Of the requests not deleted.
    var totalQuantity: Int64 = 0
    var deliveredQuantity: Int64 = 0
    var outstandingQuantity: Int64 = 0
    /// Completed requests with a completion time: their summed request-to-completion
    /// seconds (whole seconds of each time, as the dashboard counts them) and their number.
    var processingSeconds: Int64 = 0
    var processingCount: Int64 = 0

    /// Every request counted.
    var requests: Int64 { pending &+ completed &+ refunded &+ deleted }

    /// Whether no count is below zero. A tally is a sum of requests' contributions, each
    /// of 0 or 1 per count, so a negative count means the rows and the tallies disagree.
    var countsAreNonNegative: Bool {
        pending >= 0 && completed >= 0 && refunded >= 0 && deleted >= 0 && needsDelivery >= 0 && partial >= 0 && processingCount >= 0
    }
    var notDeleted: Int64 { requests &- deleted }

    /// What one request adds.
    static func of(_ c: RequestColumns, requestedAt: Int64) -> Tally {
        var t = Tally()
        switch c.status {
        case .pending: t.pending = 1
        case .completed: t.completed = 1
        case .refunded: t.refunded = 1
        case .deleted:
            t.deleted = 1
            return t
        }
        switch c.deliveryState {
        case .needsDelivery: t.needsDelivery = 1
        case .partial: t.partial = 1
        case .done: break
        }
        t.totalQuantity = c.quantity
        t.deliveredQuantity = c.delivered
        if c.status == .pending { t.outstandingQuantity = c.quantity &- c.delivered }
        if c.status == .completed, let done = c.completedAt {
            t.processingSeconds = done / 1_000_000 &- requestedAt / 1_000_000
            t.processingCount = 1
        }
        return t
    }

    mutating func add(_ o: Tally, sign: Int64) {
        pending &+= sign &* o.pending
        completed &+= sign &* o.completed
        refunded &+= sign &* o.refunded
        deleted &+= sign &* o.deleted
        needsDelivery &+= sign &* o.needsDelivery
        partial &+= sign &* o.partial
        totalQuantity &+= sign &* o.totalQuantity
        deliveredQuantity &+= sign &* o.deliveredQuantity
        outstandingQuantity &+= sign &* o.outstandingQuantity
        processingSeconds &+= sign &* o.processingSeconds
        processingCount &+= sign &* o.processingCount
    }

    /// The count of one status.
    func count(_ status: RecordStatus) -> Int64 {
        switch status {
        case .pending: pending
        case .completed: completed
        case .refunded: refunded
        case .deleted: deleted
        }
    }

    /// The count of one delivery state (of the requests not deleted).
    func count(_ state: DeliveryState) -> Int64 {
        switch state {
        case .needsDelivery: needsDelivery
        case .partial: partial
        case .done: notDeleted &- needsDelivery &- partial
        }
    }

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        try self.init(from: &r)
        guard r.isAtEnd else { throw RowDamage() }
    }

    func encode(into w: inout RowWriter) {
        for v in [pending, completed, refunded, deleted, needsDelivery, partial, totalQuantity, deliveredQuantity, outstandingQuantity,
                  processingSeconds, processingCount] { w.int(v) }
    }

    init() {}

    init(from r: inout RowReader) throws {
        pending = try r.int(); completed = try r.int(); refunded = try r.int(); deleted = try r.int()
        needsDelivery = try r.int(); partial = try r.int()
        totalQuantity = try r.int(); deliveredQuantity = try r.int(); outstandingQuantity = try r.int()
        processingSeconds = try r.int(); processingCount = try r.int()
    }
}

/// A tally of a customer's or a product's requests, with what the insights need beyond
/// sums: the newest request not deleted (its time and the name it was recorded with).
struct GroupTally: Equatable {
    var tally = Tally()
    /// The newest request time of the requests not deleted (`Int64.min`: none), and the
    /// greatest name among the requests of that time.
    var lastAt = Int64.min
    var lastName = ""

    /// Whether `name` is the name of the group's newest request (there is one).
    func isNewestName(_ name: String) -> Bool { lastAt != .min && lastName == name }

    /// Counts a request not deleted made at `at` and recorded as `name`.
    mutating func noteRequest(at: Int64, name: String) {
        if at > lastAt {
            lastAt = at
            lastName = name
        } else if at == lastAt && name > lastName {
            lastName = name
        }
    }

    /// Pending requests and their outstanding quantity, read without decoding the rest.
    static func peekPending(_ bytes: UnsafeRawBufferPointer) throws -> (pending: Int64, outstanding: Int64) {
        var r = RowReader(bytes)
        let pending = try r.int()
        for _ in 0..<7 { _ = try r.int() }
        return (pending, try r.int())
    }

    func encoded() -> [UInt8] {
        var w = RowWriter(capacity: 40)
        tally.encode(into: &w)
        w.int(lastAt)
        w.text(lastName)
        return w.bytes
    }

    init() {}

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        tally = try Tally(from: &r)
        lastAt = try r.int()
        lastName = try r.text()
        guard r.isAtEnd else { throw RowDamage() }
    }
}

/// The tenant's totals (`A`): the tally and the span of request times (which months hold
/// postings).
struct TenantTotals: Equatable {
    var tally = Tally()
    var firstRequestAt = Int64.max
    var lastRequestAt = Int64.min

    func encoded() -> [UInt8] {
        var w = RowWriter(capacity: 40)
        tally.encode(into: &w)
        w.int(firstRequestAt)
        w.int(lastRequestAt)
        return w.bytes
    }

    init() {}

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        var r = RowReader(bytes)
        tally = try Tally(from: &r)
        firstRequestAt = try r.int()
        lastRequestAt = try r.int()
        guard r.isAtEnd else { throw RowDamage() }
    }

    /// The months that may hold the tenant's postings, newest first.
    var monthsNewestFirst: [UInt16] {
        guard firstRequestAt <= lastRequestAt else { return [] }
        let first = ViewKey.month(of: firstRequestAt), last = ViewKey.month(of: lastRequestAt)
        return Array((first...last).reversed())
    }
}
