// Deterministic generator of Backorder NDJSON events (see /shared/design/domain.md).
//
// Per tenant the output is: CustomerRegistered for every customer, ProductRegistered for every
// product, then out-of-stock records in chronological order of their request time, each record's
// lifecycle emitted right after its report, with occasional CustomerUpdated / ProductUpdated
// events between records. Memory is constant in the number of events: per tenant only a few
// bytes per customer and product are kept.

/// Parameters of a generated data set. The output is a pure function of all of them.
public struct GeneratorOptions: Sendable {
    /// Seed of the pseudo-random stream; the same options always give byte-identical output.
    public var seed: UInt64 = 1
    /// Exact number of NDJSON lines to produce, over all tenants (values below 0 count as 0).
    public var events: Int = 100_000
    /// Number of tenants (at least 1). With one tenant its id is `default`, otherwise `t001`, `t002` …
    public var tenants: Int = 1
    /// Customers registered per tenant (at least 1).
    public var customersPerTenant: Int = 2_000
    /// Products registered per tenant (at least 1).
    public var productsPerTenant: Int = 1_000
    /// Start of the business-time window, in microseconds since the Unix epoch
    /// (default 2025-01-01T00:00:00Z: a fixed year in the past, so that the data are the
    /// same every day and no event is ahead of the clock; `backorder generate` ends its
    /// window at `--end` instead). Registrations happen at the start; requests follow on
    /// weekdays, 08:00–18:00 UTC. Keep it within years 1970–9000 so every time is a 4-digit year.
    public var start: Int64 = 1_735_689_600_000_000
    /// Length of the window over which requests are spread, in calendar days (at least 1).
    /// Deliveries and other follow-ups of late requests may fall after the window.
    public var days: Int = 365
    /// The latest business time of any event (µs since the epoch): a follow-up that would
    /// come later is dated `end`. nil: no limit.
    public var end: Int64?

    /// Default options: seed 1, 100,000 events, one tenant of 2,000 customers and 1,000 products,
    /// one year from 2025-01-01.
    public init() {}
}

/// A streaming, deterministic generator of Backorder events, one NDJSON line per call.
///
/// Each line is a complete JSON object without the trailing newline, with keys in the order
/// `id, type, tenant, at, actor, [correlationId], data`. Exactly `options.events` lines are
/// produced; after that `next()` returns nil. Times have millisecond precision and are written
/// in RFC 3339 UTC (`2026-03-04T09:41:07.250Z`).
///
/// Events are split evenly among tenants (tenant 1 first). The lines of one tenant obey every
/// rule of the domain: entities are registered before they are referenced, nothing follows a
/// terminal event, deliveries never exceed the remaining quantity, amendments happen only while
/// pending and never set the quantity below what has been delivered, and `at` never decreases
/// within a stream. When a tenant's share (or the run) ends in the middle of a record's
/// lifecycle, that record simply stays pending.
public struct EventGenerator: Sequence, IteratorProtocol, Sendable {
    /// One NDJSON line (UTF-8), without the trailing newline.
    public typealias Element = [UInt8]

    // MARK: Tuning

    /// Events per record on average (report, lifecycle and the updates between records), used to
    /// spread requests over the window: 1 + 1.237 lifecycle steps (from `planLifecycle`) + ≈0.021 updates.
    private static let eventsPerRecord = 2.258
    /// Chance (per million) at a record boundary of a CustomerUpdated/ProductUpdated (≈ 1% of events).
    private static let updatePerMillion = 23_000
    /// Chance (per million) at a record boundary that a multi-line order (shared correlationId) starts.
    private static let batchPerMillion = 18_000
    private static let businessDayStart: Int64 = 8 * CivilTime.microsecondsPerHour
    private static let businessDayLength: Int64 = 10 * CivilTime.microsecondsPerHour
    private static let registrationSpacing: Int64 = 100_000  // 100 ms between registrations

    private static let stepPartial: UInt64 = 1
    private static let stepFinal: UInt64 = 2
    private static let stepAmend: UInt64 = 3
    private static let stepClose: UInt64 = 4
    private static let stepRefund: UInt64 = 5
    private static let stepDelete: UInt64 = 6

    // MARK: Configuration

    private let seed: UInt64
    private let total: Int
    private let tenantCount: Int
    private let customerCount: Int
    private let productCount: Int
    private let start: Int64
    private let end: Int64
    private let days: Int
    private let tables: Tables

    // MARK: Progress

    private var emitted = 0
    private var tenantIndex = -1
    private var tenantLeft = 0
    private var out: [UInt8] = []

    // MARK: Tenant state

    private enum Phase: Sendable { case customers, products, records }

    private var rng = Xoshiro256(seed: 0)
    private var tenantJSON: [UInt8] = []
    private var phase = Phase.customers
    private var entityIndex = 0
    private var customerActor: [UInt8] = []
    private var customerPlace: [UInt16] = []  // region << 8 | country
    private var productSizes: [UInt8] = []
    private var productPrice: [Int32] = []
    private var productGarment: [UInt8] = []
    private var customerMultiplier = 1
    private var productMultiplier = 1
    private var customerOffset = 0
    private var productOffset = 0
    private var registrationEnd: Int64 = 0
    private var mondayBase: Int64 = 0  // day number of the Monday of the first business day's week
    private var firstWeekday = 0  // weekday (0–4) of the first business day
    private var slotLength = 1.0  // business microseconds per record slot
    private var slot = 0
    private var lastReportAt: Int64 = 0
    private var lastUpdateAt: Int64 = 0
    private var recordCount = 0

    // Multi-line order (one customer, several products, one correlationId).
    private var batchLeft = 0
    private var batchLine = 0
    private var batchCustomer = 0
    private var batchAt: Int64 = 0
    private var batchCorrelation: (UInt64, UInt64) = (0, 0)
    private var batchDeliveryAt: Int64 = 0
    private var batchDeliveryCorrelation: (UInt64, UInt64) = (0, 0)
    /// Whether at least two lines of the order start with a delivery; those then share one
    /// delivery time and a second correlationId ("many deliveries at once").
    private var batchSharedDelivery = false
    private var batchDeliveryActor = 0
    private var batchPlanSteps: [UInt64] = []
    private var batchPlanCounts: [Int] = []
    private var batchPlanPartials: [Int] = []

    // Current record's lifecycle.
    private var recNumber = 0
    private var recProduct = 0
    private var recSize = 0
    private var recQuantity = 0
    private var recDelivered = 0
    private var recCreator = 0
    private var recLastAt: Int64 = 0
    private var recSteps: UInt64 = 0
    private var recStepCount = 0
    private var recStepIndex = 0
    private var recPartialsLeft = 0
    private var recInBatch = false

    // Date cache for the RFC 3339 formatter.
    private var cachedDay = Int64.min
    private var cachedDate: [UInt8] = []

    // MARK: Public API

    /// Creates a generator for `options`. Out-of-range values are clamped (see ``GeneratorOptions``).
    public init(options: GeneratorOptions) {
        seed = options.seed
        total = Swift.max(0, options.events)
        tenantCount = Swift.max(1, options.tenants)
        customerCount = Swift.max(1, options.customersPerTenant)
        productCount = Swift.max(1, options.productsPerTenant)
        start = options.start
        end = options.end ?? .max
        days = Swift.max(1, options.days)
        tables = Tables.shared
        out.reserveCapacity(1_024)
        cachedDate.reserveCapacity(16)
    }

    /// Returns the next line (without the trailing newline), or nil after `options.events` lines.
    ///
    /// The returned array is the generator's internal buffer: it is reused without allocation on
    /// the next call when the caller no longer holds it.
    public mutating func next() -> [UInt8]? {
        guard emitted < total else { return nil }
        out.removeAll(keepingCapacity: true)
        produce()
        return out
    }

    /// Appends the next line followed by a newline (`\n`) to `buffer`; returns false, leaving
    /// `buffer` unchanged, after `options.events` lines. The fastest way to fill large write buffers.
    public mutating func appendNextLine(to buffer: inout [UInt8]) -> Bool {
        guard emitted < total else { return false }
        swap(&out, &buffer)
        produce()
        out.append(0x0A)
        swap(&out, &buffer)
        return true
    }

    /// The number of lines still to come.
    public var remaining: Int { total - emitted }

    /// The exact number of lines still to come.
    public var underestimatedCount: Int { total - emitted }

    // MARK: Driver

    private mutating func produce() {
        while tenantLeft == 0 { startTenant(tenantIndex + 1) }
        switch phase {
        case .customers:
            emitCustomerRegistered(entityIndex)
            entityIndex += 1
            if entityIndex == customerCount {
                phase = .products
                entityIndex = 0
            }
        case .products:
            emitProductRegistered(entityIndex)
            entityIndex += 1
            if entityIndex == productCount { phase = .records }
        case .records:
            emitRecordPhaseEvent()
        }
        tenantLeft -= 1
        emitted += 1
    }

    private mutating func startTenant(_ index: Int) {
        tenantIndex = index
        tenantLeft = total / tenantCount + (index < total % tenantCount ? 1 : 0)
        // Every option goes into the tenant's seed, so data sets made with different options never
        // share event ids (a store would take those for duplicates).
        var h = SplitMix64.mix(seed)
        for value in [UInt64(total), UInt64(tenantCount), UInt64(customerCount), UInt64(productCount),
                      UInt64(bitPattern: start), UInt64(days), UInt64(index)] {
            h = SplitMix64.mix(h ^ value)
        }
        rng = Xoshiro256(seed: h)

        if tenantCount == 1 {
            tenantJSON = Array("\"default\"".utf8)
        } else {
            let number = String(index + 1)
            let zeros = String(repeating: "0", count: Swift.max(0, 3 - number.count))
            tenantJSON = Array("\"t\(zeros)\(number)\"".utf8)
        }

        phase = .customers
        entityIndex = 0
        customerActor = [UInt8](repeating: 0, count: customerCount)
        customerPlace = [UInt16](repeating: 0, count: customerCount)
        productSizes = [UInt8](repeating: 1, count: productCount)
        productPrice = [Int32](repeating: 0, count: productCount)
        productGarment = [UInt8](repeating: 0, count: productCount)
        customerMultiplier = coprimeMultiplier(for: customerCount)
        productMultiplier = coprimeMultiplier(for: productCount)
        customerOffset = rng.below(customerCount)
        productOffset = rng.below(productCount)
        registrationEnd = start + Int64(customerCount + productCount) * Self.registrationSpacing

        // Business calendar: weekdays, 08:00–18:00 UTC, from the first weekday on or after `start`.
        var firstDay = CivilTime.day(ofMicroseconds: start)
        let wd = CivilTime.weekday(ofDay: firstDay)
        if wd >= 5 { firstDay += Int64(7 - wd) }
        firstWeekday = CivilTime.weekday(ofDay: firstDay)
        mondayBase = firstDay - Int64(firstWeekday)
        let startDay = CivilTime.day(ofMicroseconds: start)
        var businessDays = (days / 7) * 5
        for d in 0..<Int64(days % 7) where CivilTime.weekday(ofDay: startDay + d) < 5 { businessDays += 1 }
        businessDays = Swift.max(1, businessDays)
        let registrations = customerCount + productCount
        let expectedRecords = Swift.max(1.0, Double(Swift.max(0, tenantLeft - registrations)) / Self.eventsPerRecord)
        slotLength = Double(Int64(businessDays) * Self.businessDayLength) / expectedRecords

        slot = 0
        lastReportAt = registrationEnd
        lastUpdateAt = registrationEnd
        recordCount = 0
        batchLeft = 0
        recStepCount = 0
        recStepIndex = 0
    }

    private mutating func coprimeMultiplier(for n: Int) -> Int {
        if n <= 2 { return 1 }
        var m = n / 2 + rng.below(n / 2)
        while gcd(m, n) != 1 { m = m + 1 < n ? m + 1 : 1 }
        return m
    }

    private func gcd(_ a: Int, _ b: Int) -> Int {
        var a = a, b = b
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    // MARK: Picking

    /// A customer index, skewed so that some customers ask much more often than others.
    private mutating func pickCustomer() -> Int {
        let u = rng.unit()
        let raw = Int(Double(customerCount) * u * u)
        return (raw &* customerMultiplier &+ customerOffset) % customerCount
    }

    private mutating func pickProduct() -> Int {
        let u = rng.unit()
        let raw = Int(Double(productCount) * u * u)
        return (raw &* productMultiplier &+ productOffset) % productCount
    }

    /// A size of the product, weighted by popularity; `excluding` is avoided when possible.
    private mutating func pickSize(mask: UInt8, excluding: Int = -1) -> Int {
        var sum = 0
        for i in 0..<Tables.sizeCount where mask & (1 << i) != 0 && i != excluding {
            sum += tables.sizeWeights[i]
        }
        if sum == 0 { return excluding }
        var r = rng.below(sum)
        for i in 0..<Tables.sizeCount where mask & (1 << i) != 0 && i != excluding {
            r -= tables.sizeWeights[i]
            if r < 0 { return i }
        }
        return excluding
    }

    private mutating func pickQuantity() -> Int {
        let u = rng.unit()
        var q = 10 + Int(1_990.0 * u * u * u)
        if q >= 100 && rng.chance(600_000) { q = (q + 5) / 10 * 10 }
        if q >= 500 && rng.chance(500_000) { q = (q + 25) / 50 * 50 }
        return Swift.min(Swift.max(q, 10), 2_000)
    }

    private mutating func pickActor() -> Int { rng.below(Tables.actorCount) }

    private mutating func pickSizeMask() -> UInt8 {
        let r = rng.below(100)
        if r < 5 { return UInt8(1 << rng.below(Tables.sizeCount)) }  // one size
        if r < 80 {  // a contiguous range, typically S–XL or M–XXL
            let lo = rng.below(3)
            let hi = rng.between(Swift.max(lo, 2), 5)
            var mask = 0
            for i in lo...hi { mask |= 1 << i }
            return UInt8(mask)
        }
        return UInt8(rng.between(1, 63))
    }

    // MARK: Time

    /// Business time of the next request slot, mapped to weekdays 08:00–18:00 UTC; never earlier
    /// than the previous request of the tenant.
    private mutating func nextSlotTime() -> Int64 {
        let business = Int64(slotLength * (Double(slot) + rng.unit()))
        slot += 1
        let dayIndex = business / Self.businessDayLength
        let offset = business % Self.businessDayLength
        let k = Int64(firstWeekday) + dayIndex
        let day = mondayBase + (k / 5) * 7 + k % 5
        var at = day * CivilTime.microsecondsPerDay + Self.businessDayStart + offset
        at = Swift.min(at / 1_000 * 1_000, end)
        if at < lastReportAt { at = lastReportAt }
        lastReportAt = at
        return at
    }

    /// A time `minDays`…`maxDays` business days (weekdays) after `previous`, during business
    /// hours; with 0 days, 1–180 minutes later. Strictly later than `previous`, unless that
    /// would pass `end`: then `end`.
    private mutating func later(_ previous: Int64, minDays: Int, maxDays: Int) -> Int64 {
        Swift.min(unbounded(after: previous, minDays: minDays, maxDays: maxDays), Swift.max(end, previous))
    }

    private mutating func unbounded(after previous: Int64, minDays: Int, maxDays: Int) -> Int64 {
        let d = rng.between(minDays, maxDays)
        if d == 0 {
            return previous + Int64(rng.between(60_000, 10_800_000)) * 1_000
        }
        var day = CivilTime.day(ofMicroseconds: previous)
        var wd = CivilTime.weekday(ofDay: day)
        if wd >= 5 {  // a weekend counts as the Friday before it
            day -= Int64(wd - 4)
            wd = 4
        }
        let k = Int64(wd + d)
        day = day - Int64(wd) + (k / 5) * 7 + k % 5
        let ms = Int64(rng.below(Int(Self.businessDayLength / 1_000)))
        return day * CivilTime.microsecondsPerDay + Self.businessDayStart + ms * 1_000
    }

    // MARK: Record phase

    private mutating func emitRecordPhaseEvent() {
        if recStepIndex < recStepCount {
            emitStep()
            return
        }
        if batchLeft == 0 {
            if rng.chance(Self.updatePerMillion) {
                emitUpdate()
                return
            }
            if rng.chance(Self.batchPerMillion) { startBatch() }
        }
        emitReport()
    }

    private mutating func startBatch() {
        batchLeft = rng.between(2, 6)
        batchLine = 0
        batchCustomer = pickCustomer()
        batchAt = nextSlotTime()
        batchCorrelation = (rng.next(), rng.next())
        batchDeliveryAt = later(batchAt, minDays: 2, maxDays: 22)
        batchDeliveryCorrelation = (rng.next(), rng.next())
        batchDeliveryActor = pickActor()
        // Plan every line now, so the shared delivery is used only when two or more lines join it.
        batchPlanSteps.removeAll(keepingCapacity: true)
        batchPlanCounts.removeAll(keepingCapacity: true)
        batchPlanPartials.removeAll(keepingCapacity: true)
        var startWithDelivery = 0
        for _ in 0..<batchLeft {
            planLifecycle()
            batchPlanSteps.append(recSteps)
            batchPlanCounts.append(recStepCount)
            batchPlanPartials.append(recPartialsLeft)
            let first = recSteps & 0xF
            if recStepCount > 0 && (first == Self.stepPartial || first == Self.stepFinal) {
                startWithDelivery += 1
            }
        }
        batchSharedDelivery = startWithDelivery >= 2
        recStepCount = 0
        recStepIndex = 0
    }

    private mutating func emitReport() {
        recordCount += 1
        let at: Int64
        let customer: Int
        if batchLeft > 0 {
            batchLeft -= 1
            if batchLine > 0 { slot += 1 }
            at = batchAt + Int64(batchLine) * 1_000
            batchLine += 1
            if at > lastReportAt { lastReportAt = at }
            customer = batchCustomer
            recInBatch = true
        } else {
            at = nextSlotTime()
            customer = pickCustomer()
            recInBatch = false
        }
        recNumber = recordCount
        recProduct = pickProduct()
        recSize = pickSize(mask: productSizes[recProduct])
        recQuantity = pickQuantity()
        recDelivered = 0
        recCreator = rng.chance(850_000) ? Int(customerActor[customer]) : pickActor()
        recLastAt = at
        if recInBatch {
            let line = batchLine - 1
            recSteps = batchPlanSteps[line]
            recStepCount = batchPlanCounts[line]
            recPartialsLeft = batchPlanPartials[line]
            recStepIndex = 0
        } else {
            planLifecycle()
        }

        header("OutOfStockReported", at: at, actor: recCreator,
               correlation: recInBatch ? batchCorrelation : nil)
        put("\"recordId\":")
        putID("R-", recNumber)
        put(",\"customerId\":")
        putID("C-", customer + 1)
        put(",\"productId\":")
        putID("P-", recProduct + 1)
        put(",\"size\":")
        out.append(contentsOf: tables.sizeLabels[recSize])
        put(",\"quantity\":")
        putInt(recQuantity)
        if rng.chance(200_000) {
            put(",\"notes\":")
            putString(tables.reportNotes[rng.below(tables.reportNotes.count)])
        }
        put("}}")
    }

    /// Decides the record's fate and packs its lifecycle steps (4 bits each) into `recSteps`.
    private mutating func planLifecycle() {
        var partials = 0
        var terminal: UInt64 = 0
        let u = rng.below(1_000_000)
        if u < 10_000 {  // deleted (≈1%), possibly after a partial delivery
            partials = rng.chance(300_000) ? 1 : 0
            terminal = Self.stepDelete
        } else if u < 406_000 {  // stays pending (≈40%), some with partial deliveries
            partials = rng.chance(300_000) ? (rng.chance(700_000) ? 1 : 2) : 0
        } else if u < 901_000 {  // completed (≈50%)
            if rng.chance(800_000) {  // delivered in full, in 1–4 deliveries
                let v = rng.below(100)
                partials = v < 50 ? 0 : v < 80 ? 1 : v < 95 ? 2 : 3
                terminal = Self.stepFinal
            } else {  // partial deliveries, then closed by hand
                partials = rng.chance(700_000) ? 1 : 2
                terminal = Self.stepClose
            }
        } else {  // refunded (≈10%), possibly after a partial delivery
            partials = rng.chance(300_000) ? 1 : 0
            terminal = Self.stepRefund
        }
        let amendAt = rng.chance(20_000) ? rng.between(0, partials) : -1
        var steps: UInt64 = 0
        var count = 0
        for i in 0...partials {
            if i == amendAt {
                steps |= Self.stepAmend << UInt64(4 * count)
                count += 1
            }
            if i < partials {
                steps |= Self.stepPartial << UInt64(4 * count)
                count += 1
            }
        }
        if terminal != 0 {
            steps |= terminal << UInt64(4 * count)
            count += 1
        }
        recSteps = steps
        recStepCount = count
        recStepIndex = 0
        recPartialsLeft = partials
    }

    private mutating func emitStep() {
        let code = (recSteps >> UInt64(4 * recStepIndex)) & 0xF
        let isFirst = recStepIndex == 0
        recStepIndex += 1
        switch code {
        case Self.stepPartial, Self.stepFinal:
            let at: Int64
            let shared = isFirst && recInBatch && batchSharedDelivery
            if shared {
                at = batchDeliveryAt
            } else {
                at = later(recLastAt, minDays: isFirst ? 2 : 1, maxDays: isFirst ? 22 : 15)
            }
            let remaining = recQuantity - recDelivered
            var amount: Int
            if code == Self.stepFinal {
                amount = remaining
            } else {
                // Leave at least one unit for every later partial delivery and one more after them.
                recPartialsLeft -= 1
                let maxAmount = remaining - 1 - recPartialsLeft
                amount = Int(Double(remaining) * (0.15 + 0.5 * rng.unit()))
                if amount >= 20 && rng.chance(500_000) { amount = amount / 10 * 10 }
                amount = Swift.min(Swift.max(amount, 1), maxAmount)
            }
            recDelivered += amount
            recLastAt = at
            header("DeliveryRecorded", at: at, actor: shared ? batchDeliveryActor : pickActor(),
                   correlation: shared ? batchDeliveryCorrelation : nil)
            put("\"recordId\":")
            putID("R-", recNumber)
            put(",\"quantity\":")
            putInt(amount)
            if rng.chance(150_000) {
                put(",\"notes\":")
                putString(tables.deliveryNotes[rng.below(tables.deliveryNotes.count)])
            }
            put("}}")

        case Self.stepAmend:
            let at = later(recLastAt, minDays: 0, maxDays: 5)
            recLastAt = at
            var changeQuantity = rng.chance(800_000)
            let changeNotes = rng.chance(300_000)
            var newSize = -1
            if rng.chance(100_000) {
                let s = pickSize(mask: productSizes[recProduct], excluding: recSize)
                if s != recSize { newSize = s }
            }
            if !changeQuantity && !changeNotes && newSize < 0 { changeQuantity = true }
            header("OutOfStockAmended", at: at, actor: rng.chance(700_000) ? recCreator : pickActor(),
                   correlation: nil)
            put("\"recordId\":")
            putID("R-", recNumber)
            if changeQuantity {
                // Keep room for the planned partial deliveries: quantity ≥ delivered + 2 + partials left.
                var q = Int(Double(recQuantity) * (0.5 + rng.unit()))
                if q == recQuantity { q += 10 }
                q = Swift.min(Swift.max(q, recDelivered + 2 + recPartialsLeft, 1), 1_000_000)
                recQuantity = q
                put(",\"quantity\":")
                putInt(q)
            }
            if changeNotes {
                put(",\"notes\":")
                putString(tables.amendNotes[rng.below(tables.amendNotes.count)])
            }
            if newSize >= 0 {
                recSize = newSize
                put(",\"size\":")
                out.append(contentsOf: tables.sizeLabels[newSize])
            }
            put("}}")

        case Self.stepClose:
            emitRecordEnd("OutOfStockClosed", minDays: 1, maxDays: 10, reasonPerMillion: 700_000, reasons: tables.closeReasons)
        case Self.stepRefund:
            emitRecordEnd("RefundRecorded", minDays: 1, maxDays: 22, reasonPerMillion: 800_000, reasons: tables.refundReasons)
        default:  // stepDelete
            emitRecordEnd("OutOfStockDeleted", minDays: 0, maxDays: 7, reasonPerMillion: 800_000, reasons: tables.deleteReasons)
        }
    }

    /// The event that ends the current record — closed, refunded or deleted — mostly by its
    /// creator, with a reason most of the time.
    private mutating func emitRecordEnd(_ type: StaticString, minDays: Int, maxDays: Int, reasonPerMillion: Int, reasons: [[UInt8]]) {
        let at = later(recLastAt, minDays: minDays, maxDays: maxDays)
        recLastAt = at
        header(type, at: at, actor: rng.chance(700_000) ? recCreator : pickActor(), correlation: nil)
        put("\"recordId\":")
        putID("R-", recNumber)
        if rng.chance(reasonPerMillion) {
            put(",\"reason\":")
            putString(reasons[rng.below(reasons.count)])
        }
        put("}}")
    }

    // MARK: Registrations and updates

    private mutating func emitCustomerRegistered(_ i: Int) {
        let at = start + Int64(i) * Self.registrationSpacing
        let actor = pickActor()
        customerActor[i] = UInt8(actor)
        var w = rng.below(tables.regionWeightTotal)
        var region = 0
        while w >= tables.regions[region].weight {
            w -= tables.regions[region].weight
            region += 1
        }
        let country = rng.below(tables.regions[region].countries.count)
        customerPlace[i] = UInt16(region << 8 | country)

        header("CustomerRegistered", at: at, actor: actor, correlation: nil)
        put("\"customerId\":")
        putID("C-", i + 1)
        put(",\"number\":\"")
        putInt(10_000 + i + 1)
        put("\",\"name\":")
        putCustomerName()
        if rng.chance(950_000) {
            put(",\"address\":")
            putAddress()
        }
        if rng.chance(900_000) {
            put(",\"phone\":")
            putPhone(region: region, country: country)
        }
        if rng.chance(980_000) {
            put(",")
            putPlace(region: region, country: country)
        }
        put("}}")
    }

    private mutating func emitProductRegistered(_ j: Int) {
        let at = start + Int64(customerCount + j) * Self.registrationSpacing
        let garment = rng.below(tables.garments.count)
        productGarment[j] = UInt8(garment)
        let sizes = pickSizeMask()
        productSizes[j] = sizes
        let price = newPrice(base: tables.garments[garment].basePriceCents)
        productPrice[j] = Int32(price)

        header("ProductRegistered", at: at, actor: pickActor(), correlation: nil)
        put("\"productId\":")
        putID("P-", j + 1)
        put(",\"sku\":\"")
        out.append(contentsOf: tables.garments[garment].code)
        out.append(0x2D)
        putInt(10_000 + j + 1)
        put("\",\"name\":")
        putProductName(garment: garment)
        put(",\"sizes\":")
        out.append(contentsOf: tables.sizeLists[Int(sizes)])
        if rng.chance(950_000) {
            put(",\"price\":")
            putPrice(price)
        }
        put("}}")
    }

    private mutating func newPrice(base: Int) -> Int {
        let cents = Int(Double(base) * (0.7 + 0.9 * rng.unit()))
        return Swift.max(0, cents / 100) * 100 + 99
    }

    private mutating func emitUpdate() {
        var at = Swift.max(lastReportAt, lastUpdateAt) + Int64(rng.between(1, 60_000)) * 1_000
        at = at / 1_000 * 1_000
        lastUpdateAt = at
        if rng.chance(600_000) {
            let c = pickCustomer()
            header("CustomerUpdated", at: at, actor: Int(customerActor[c]), correlation: nil)
            put("\"customerId\":")
            putID("C-", c + 1)
            let kind = rng.below(100)
            var region = Int(customerPlace[c] >> 8)
            var country = Int(customerPlace[c] & 0xFF)
            if kind < 35 {
                put(",\"phone\":")
                putPhone(region: region, country: country)
            } else if kind < 65 {
                put(",\"address\":")
                putAddress()
            } else if kind < 80 {
                put(",\"name\":")
                putCustomerName()
            } else {  // moved: new address in another region
                region = (region + 1 + rng.below(tables.regions.count - 1)) % tables.regions.count
                country = rng.below(tables.regions[region].countries.count)
                customerPlace[c] = UInt16(region << 8 | country)
                put(",\"address\":")
                putAddress()
                put(",")
                putPlace(region: region, country: country)
            }
            put("}}")
        } else {
            let p = pickProduct()
            header("ProductUpdated", at: at, actor: pickActor(), correlation: nil)
            put("\"productId\":")
            putID("P-", p + 1)
            let kind = rng.below(100)
            if kind >= 85 && productSizes[p] != 63 {  // a size added (sizes only ever grow)
                var add = rng.below(Tables.sizeCount)
                while productSizes[p] & (1 << add) != 0 { add = (add + 1) % Tables.sizeCount }
                productSizes[p] |= UInt8(1 << add)
                put(",\"sizes\":")
                out.append(contentsOf: tables.sizeLists[Int(productSizes[p])])
            } else if kind >= 60 && kind < 85 {
                put(",\"name\":")
                putProductName(garment: Int(productGarment[p]))
            } else {
                // A price change of −10 %…+15 %, kept within 0.5–2.5 × the garment's base price.
                let base = tables.garments[Int(productGarment[p])].basePriceCents
                var cents = Int(Double(Int(productPrice[p])) * (0.9 + 0.25 * rng.unit()))
                cents = Swift.min(Swift.max(cents, base / 2), base * 5 / 2)
                let price = cents / 100 * 100 + 99
                productPrice[p] = Int32(price)
                put(",\"price\":")
                putPrice(price)
            }
            put("}}")
        }
    }

    // MARK: Field writers

    private mutating func putCustomerName() {
        out.append(0x22)
        if rng.chance(10_000) {
            out.append(contentsOf: tables.oddCustomerNames[rng.below(tables.oddCustomerNames.count)])
        } else {
            out.append(contentsOf: tables.surnames[rng.below(tables.surnames.count)])
            out.append(0x20)
            out.append(contentsOf: tables.trades[rng.below(tables.trades.count)])
            if rng.chance(850_000) {
                out.append(0x20)
                out.append(contentsOf: tables.legalForms[rng.below(tables.legalForms.count)])
            }
        }
        out.append(0x22)
    }

    private mutating func putProductName(garment: Int) {
        out.append(0x22)
        if rng.chance(10_000) {
            out.append(contentsOf: tables.oddProductNames[rng.below(tables.oddProductNames.count)])
        } else {
            out.append(contentsOf: tables.productLines[rng.below(tables.productLines.count)])
            out.append(0x20)
            out.append(contentsOf: tables.materials[rng.below(tables.materials.count)])
            out.append(0x20)
            out.append(contentsOf: tables.garments[garment].name)
        }
        out.append(0x22)
    }

    private mutating func putAddress() {
        out.append(0x22)
        out.append(contentsOf: tables.streets[rng.below(tables.streets.count)])
        out.append(0x20)
        putInt(rng.between(1, 250))
        out.append(0x22)
    }

    private mutating func putPhone(region: Int, country: Int) {
        out.append(0x22)
        out.append(contentsOf: tables.regions[region].countries[country].phonePrefix)
        out.append(0x20)
        putInt(rng.between(10, 99))
        out.append(0x20)
        putInt(rng.between(1_000_000, 9_999_999))
        out.append(0x22)
    }

    /// Writes `"country":…,"region":…,"city":…` (without a leading comma).
    private mutating func putPlace(region: Int, country: Int) {
        let c = tables.regions[region].countries[country]
        put("\"country\":\"")
        out.append(contentsOf: c.code)
        put("\",\"region\":\"")
        out.append(contentsOf: tables.regions[region].name)
        put("\",\"city\":\"")
        out.append(contentsOf: c.cities[rng.below(c.cities.count)])
        out.append(0x22)
    }

    private mutating func putPrice(_ cents: Int) {
        putInt(cents / 100)
        out.append(0x2E)
        putPadded(cents % 100, width: 2)
    }

    // MARK: Envelope and primitives

    /// Writes `{"id":…,"type":…,"tenant":…,"at":…,"actor":…,["correlationId":…,]"data":{`.
    private mutating func header(_ type: StaticString, at: Int64, actor: Int,
                                 correlation: (UInt64, UInt64)?) {
        put("{\"id\":\"")
        putUUID(rng.next(), rng.next())
        put("\",\"type\":\"")
        put(type)
        put("\",\"tenant\":")
        out.append(contentsOf: tenantJSON)
        put(",\"at\":\"")
        putTime(at)
        put("\",\"actor\":")
        out.append(contentsOf: tables.actors[actor])
        if let correlation {
            put(",\"correlationId\":\"")
            putUUID(correlation.0, correlation.1)
            out.append(0x22)
        }
        put(",\"data\":{")
    }

    @inline(__always)
    private mutating func put(_ s: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Writes a pre-escaped string in quotes.
    @inline(__always)
    private mutating func putString(_ escaped: [UInt8]) {
        out.append(0x22)
        out.append(contentsOf: escaped)
        out.append(0x22)
    }

    /// Writes `"<prefix><n, at least 6 digits>"`.
    private mutating func putID(_ prefix: StaticString, _ n: Int) {
        out.append(0x22)
        put(prefix)
        putPadded(n, width: 6)
        out.append(0x22)
    }

    private mutating func putInt(_ value: Int) {
        if value < 0 {
            out.append(0x2D)
            putPadded(0 - value, width: 1)
        } else {
            putPadded(value, width: 1)
        }
    }

    /// Writes a non-negative integer with at least `width` digits (zero-padded).
    private mutating func putPadded(_ value: Int, width: Int) {
        var digits = 1
        var v = value
        while v >= 10 {
            v /= 10
            digits += 1
        }
        if digits < width { digits = width }
        let base = out.count
        out.append(contentsOf: repeatElement(0x30, count: digits))
        out.withUnsafeMutableBufferPointer { buf in
            var v = value
            var i = base + digits - 1
            while v > 0 {
                buf[i] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
                i -= 1
            }
        }
    }

    /// Writes a UUID-shaped string (version 4, RFC 4122 variant) from 128 random bits.
    private mutating func putUUID(_ hiBits: UInt64, _ loBits: UInt64) {
        let hi = (hiBits & ~0xF000) | 0x4000
        let lo = (loBits & ~(UInt64(3) << 62)) | (UInt64(2) << 62)
        let base = out.count
        out.append(contentsOf: repeatElement(0x2D, count: 36))
        out.withUnsafeMutableBufferPointer { buf in
            @inline(__always) func hex(_ n: UInt64) -> UInt8 {
                let d = UInt8(truncatingIfNeeded: n & 0xF)
                return d < 10 ? 0x30 + d : 0x57 + d
            }
            var p = base
            for k in 0..<16 {
                if k == 8 || k == 12 { p += 1 }
                buf[p] = hex(hi >> UInt64(60 - 4 * k))
                p += 1
            }
            p += 1
            for k in 0..<16 {
                if k == 4 { p += 1 }
                buf[p] = hex(lo >> UInt64(60 - 4 * k))
                p += 1
            }
        }
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` for `microseconds` since the epoch (UTC).
    private mutating func putTime(_ microseconds: Int64) {
        let ms = CivilTime.floorDiv(microseconds, 1_000)
        let day = CivilTime.floorDiv(ms, 86_400_000)
        if day != cachedDay {
            cachedDay = day
            let (y, m, d) = CivilTime.civil(fromDays: day)
            let saved = out.count
            putPadded(Int(y), width: 4)
            out.append(0x2D)
            putPadded(m, width: 2)
            out.append(0x2D)
            putPadded(d, width: 2)
            out.append(0x54)
            cachedDate.removeAll(keepingCapacity: true)
            cachedDate.append(contentsOf: out[saved...])
        } else {
            out.append(contentsOf: cachedDate)
        }
        var rest = Int(ms - day * 86_400_000)
        let millis = rest % 1_000
        rest /= 1_000
        let seconds = rest % 60
        rest /= 60
        let minutes = rest % 60
        let hours = rest / 60
        let base = out.count
        out.append(contentsOf: repeatElement(0x30, count: 13))
        out.withUnsafeMutableBufferPointer { buf in
            @inline(__always) func two(_ at: Int, _ v: Int) {
                buf[at] = UInt8(truncatingIfNeeded: 0x30 + v / 10)
                buf[at + 1] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
            }
            two(base, hours)
            buf[base + 2] = 0x3A
            two(base + 3, minutes)
            buf[base + 5] = 0x3A
            two(base + 6, seconds)
            buf[base + 8] = 0x2E
            buf[base + 9] = UInt8(truncatingIfNeeded: 0x30 + millis / 100)
            two(base + 10, millis % 100)
            buf[base + 12] = 0x5A
        }
    }
}
