/// The keys of the records view (docs/PROJECTIONS.md, "Keys"). Every key starts with the
/// tenant's bytes and a 0 byte (tenant names hold no 0 byte), then one byte naming the
/// kind of row, then the kind's own parts. Times are 8 bytes big-endian with the sign bit
/// flipped, so byte order is time order; months are 2 bytes big-endian.
///
/// Kinds whose keys lead with a *month* (postings) put each month's rows together: new
/// requests land in the newest months, so flushes and compactions touch only those.
enum ViewKey {
    // Requests
    /// Request by request time: `T` time id → the request's changing columns.
    static let requestByTime: UInt8 = 0x54 // T
    /// Request by id: `R` id → its request time and fixed details.
    static let requestByID: UInt8 = 0x52 // R
    /// Completed requests by completion time: `D` time requestTime id → ().
    static let completion: UInt8 = 0x44 // D
    /// Customer postings: `C` month customer 0 time id → ().
    static let customerPosting: UInt8 = 0x43 // C
    /// Product postings: `Q` month product 0 time id → deleted flag, customer.
    static let productPosting: UInt8 = 0x51 // Q
    /// Recorded-name postings: `M` year len name time id → () (years since 1970).
    static let namePosting: UInt8 = 0x4D // M
    /// Notes words: `W` month word 0 time id → ().
    static let notesWord: UInt8 = 0x57 // W
    /// Recorded names: `n` name → (); `N` word 0 name → () for each word of the name.
    static let name: UInt8 = 0x6E // n
    static let nameWord: UInt8 = 0x4E // N
    // Parties
    /// Customer rows: `K` id → CustomerRow; product rows: `P` id → ProductRow.
    static let customerRow: UInt8 = 0x4B // K
    static let productRow: UInt8 = 0x50 // P
    // Aggregates
    /// Tenant totals: `A` → Tally.
    static let totals: UInt8 = 0x41 // A
    /// Per request day: `d` day → Tally.
    static let day: UInt8 = 0x64 // d
    /// Per completion day: `e` day → Tally (only `completed` set: the requests completed
    /// that day, as they stand now).
    static let completionDay: UInt8 = 0x65 // e
    /// The ranking of customers and products by outstanding quantity: `O` c|p ~outstanding id → ().
    static let rank: UInt8 = 0x4F // O
    /// Per customer / product: `c` id, `p` id → GroupTally.
    static let customerTally: UInt8 = 0x63 // c
    static let productTally: UInt8 = 0x70 // p

    /// Kinds whose keys continue with a 2-byte month.
    static func hasMonth(_ kind: UInt8) -> Bool {
        kind == customerPosting || kind == productPosting || kind == namePosting || kind == notesWord
    }

    /// The key's partition (tenant, kind and, for posting kinds, month): the KV store cuts
    /// files where it changes.
    static func partitionLength(_ key: UnsafeRawBufferPointer) -> Int {
        guard let zero = key.firstIndex(of: 0), zero + 1 < key.count else { return key.count }
        return zero + 2 + (hasMonth(key[zero + 1]) ? 2 : 0)
    }

    /// `tenant 0 kind`.
    static func prefix(_ tenant: String, _ kind: UInt8) -> [UInt8] {
        var key = Array(tenant.utf8)
        key.reserveCapacity(key.count + 40)
        key.append(0)
        key.append(kind)
        return key
    }

    /// `tenant 0 kind month`.
    static func prefix(_ tenant: String, _ kind: UInt8, month: UInt16) -> [UInt8] {
        var key = prefix(tenant, kind)
        appendMonth(month, to: &key)
        return key
    }

    static func appendTime(_ t: Int64, to key: inout [UInt8]) {
        let v = UInt64(bitPattern: t) ^ (1 << 63)
        for shift in stride(from: 56, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    static func appendMonth(_ m: UInt16, to key: inout [UInt8]) {
        key.append(UInt8(m >> 8))
        key.append(UInt8(m & 0xFF))
    }

    static func appendDay(_ day: Int64, to key: inout [UInt8]) {
        let v = UInt32(truncatingIfNeeded: day) ^ (1 << 31)
        for shift in stride(from: 24, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    /// A time read back from 8 key bytes.
    static func time(_ key: UnsafeRawBufferPointer, at offset: Int) -> Int64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(key[offset + i]) }
        return Int64(bitPattern: v ^ (1 << 63))
    }

    static func day(_ key: UnsafeRawBufferPointer, at offset: Int) -> Int64 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(key[offset + i]) }
        return Int64(Int32(bitPattern: v ^ (1 << 31)))
    }

    /// The month (since January 1970, clamped to 0…65535) of a time.
    static func month(of t: Int64) -> UInt16 {
        let (year, month, _) = Timestamp.civilFromDays(Int(clamping: Timestamp.daysSinceEpoch(t)))
        let m = (year - 1970) * 12 + (month - 1)
        return UInt16(clamping: max(0, m))
    }

    /// The first time of a month number.
    static func start(ofMonth m: UInt16) -> Int64 {
        let year = 1970 + Int(m) / 12, month = Int(m) % 12 + 1
        return Int64(Timestamp.daysFromCivil(year, month, 1)) * 86_400_000_000
    }

    /// The day number (days since 1970-01-01, floored) of a time.
    static func day(of t: Int64) -> Int64 { Timestamp.daysSinceEpoch(t) }

    /// Whether `key` starts with `prefix`.
    static func hasPrefix(_ key: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        guard key.count >= prefix.count else { return false }
        return prefix.withUnsafeBytes { p in
            guard let a = p.baseAddress, let b = key.baseAddress else { return p.isEmpty }
            return memcmp(a, b, p.count) == 0
        }
    }

    /// The key after every key that starts with `prefix` (for an exclusive upper bound).
    static func end(of prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0xFF, 0xFF, 0xFF, 0xFF]
    }
}

import OutOfStock
#if canImport(Glibc)
import Glibc
#endif
