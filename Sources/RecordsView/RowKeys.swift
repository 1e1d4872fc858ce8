/// Builds the records view's keys (the layout is `ViewKey`'s), into a buffer the caller
/// reuses (the projector: no allocation per row) or into a new array (queries).
enum RowKeys {
    @inline(__always)
    static func start(_ key: inout [UInt8], _ tenant: String, _ kind: UInt8) {
        key.append(contentsOf: tenant.utf8)
        key.append(0)
        key.append(kind)
    }

    static func requestByTime(_ key: inout [UInt8], _ tenant: String, _ at: Int64, _ id: String) {
        start(&key, tenant, ViewKey.requestByTime)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
    }

    static func requestByID(_ key: inout [UInt8], _ tenant: String, _ id: String) {
        start(&key, tenant, ViewKey.requestByID)
        key.append(contentsOf: id.utf8)
    }

    /// `D` completion-time request-time id: completions in the dashboard's order (ties of
    /// completion time by request time, then id) without reading their rows.
    static func completion(_ key: inout [UInt8], _ tenant: String, _ done: Int64, _ requestedAt: Int64, _ id: String) {
        start(&key, tenant, ViewKey.completion)
        ViewKey.appendTime(done, to: &key)
        ViewKey.appendTime(requestedAt, to: &key)
        key.append(contentsOf: id.utf8)
    }

    /// `C`/`Q` month party 0 time id.
    static func posting(_ key: inout [UInt8], _ tenant: String, _ kind: UInt8, _ month: UInt16, _ party: String, _ at: Int64, _ id: String) {
        start(&key, tenant, kind)
        ViewKey.appendMonth(month, to: &key)
        key.append(contentsOf: party.utf8)
        key.append(0)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
    }

    /// A product posting's value: a byte (1: the request is deleted), then the customer.
    static func productPostingValue(_ value: inout [UInt8], customer: String, deleted: Bool) {
        value.append(deleted ? 1 : 0)
        value.append(contentsOf: customer.utf8)
    }

    /// `M` year length name (the length keeps names with any bytes apart). Name postings
    /// lead with the *year* of the request (`month / 12`), not its month: a search reads one
    /// range per matching name and year.
    static func namePostingPrefix(_ key: inout [UInt8], _ tenant: String, _ month: UInt16, _ name: String) {
        start(&key, tenant, ViewKey.namePosting)
        ViewKey.appendMonth(month / 12, to: &key)
        let n = name.utf8.count
        key.append(UInt8(truncatingIfNeeded: n >> 8))
        key.append(UInt8(truncatingIfNeeded: n))
        key.append(contentsOf: name.utf8)
    }

    static func namePosting(_ key: inout [UInt8], _ tenant: String, _ month: UInt16, _ name: String, _ at: Int64, _ id: String) {
        namePostingPrefix(&key, tenant, month, name)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
    }

    /// `W` month word (words hold no 0 byte: letters, digits and marks only).
    static func notesWordPrefix(_ key: inout [UInt8], _ tenant: String, _ month: UInt16, _ word: String) {
        start(&key, tenant, ViewKey.notesWord)
        ViewKey.appendMonth(month, to: &key)
        key.append(contentsOf: word.utf8)
    }

    static func notesWord(_ key: inout [UInt8], _ tenant: String, _ month: UInt16, _ word: String, _ at: Int64, _ id: String) {
        notesWordPrefix(&key, tenant, month, word)
        key.append(0)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
    }

    // Allocating forms, for queries and rare rows.

    static func build(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(48)
        body(&key)
        return key
    }

    static func requestByTime(_ tenant: String, _ at: Int64, _ id: String) -> [UInt8] { build { requestByTime(&$0, tenant, at, id) } }
    static func requestByID(_ tenant: String, _ id: String) -> [UInt8] { build { requestByID(&$0, tenant, id) } }
    static func namePostingPrefix(_ tenant: String, _ month: UInt16, _ name: String) -> [UInt8] { build { namePostingPrefix(&$0, tenant, month, name) } }
    static func notesWordPrefix(_ tenant: String, _ month: UInt16, _ word: String) -> [UInt8] { build { notesWordPrefix(&$0, tenant, month, word) } }

    static func name(_ tenant: String, _ name: String) -> [UInt8] { keyed(tenant, ViewKey.name, name) }

    /// `N` word 0 name.
    static func nameWord(_ tenant: String, _ word: String, _ name: String) -> [UInt8] {
        build { key in
            start(&key, tenant, ViewKey.nameWord)
            key.append(contentsOf: word.utf8)
            key.append(0)
            key.append(contentsOf: name.utf8)
        }
    }

    /// `O` kind outstanding id: customers (kind `c`) or products (`p`) with pending requests,
    /// most outstanding quantity first (the quantity is stored complemented), ties by id.
    static func rank(_ tenant: String, isCustomer: Bool, outstanding: Int64, _ id: String) -> [UInt8] {
        build { key in
            start(&key, tenant, ViewKey.rank)
            key.append(isCustomer ? ViewKey.customerTally : ViewKey.productTally)
            ViewKey.appendTime(~outstanding, to: &key)
            key.append(contentsOf: id.utf8)
        }
    }

    static func customer(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.customerRow, id) }
    static func product(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.productRow, id) }
    static func customerTally(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.customerTally, id) }
    static func productTally(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.productTally, id) }
    static func totals(_ tenant: String) -> [UInt8] { build { start(&$0, tenant, ViewKey.totals) } }

    /// A day's tally: `kind` is `ViewKey.day` (by request day) or `ViewKey.completionDay`.
    static func day(_ tenant: String, _ day: Int64, kind: UInt8 = ViewKey.day) -> [UInt8] {
        build { key in
            start(&key, tenant, kind)
            ViewKey.appendDay(day, to: &key)
        }
    }

    private static func keyed(_ tenant: String, _ kind: UInt8, _ id: String) -> [UInt8] {
        build { key in
            start(&key, tenant, kind)
            key.append(contentsOf: id.utf8)
        }
    }

    /// The time and id at the end of a key, after `offset` bytes of prefix.
    static func timeAndID(_ key: UnsafeRawBufferPointer, after offset: Int) -> (Int64, String) {
        (ViewKey.time(key, at: offset), String(decoding: UnsafeRawBufferPointer(rebasing: key[(offset + 8)...]), as: UTF8.self))
    }

    /// A key for a message: its printable bytes, others as \xNN.
    static func describe(_ key: [UInt8]) -> String {
        key.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
    }
}
