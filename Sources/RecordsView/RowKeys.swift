/// Builds the records view's keys (the layout is `ViewKey`'s).
enum RowKeys {
    static func requestByTime(_ tenant: String, _ at: Int64, _ id: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.requestByTime)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
        return key
    }

    static func requestByID(_ tenant: String, _ id: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.requestByID)
        key.append(contentsOf: id.utf8)
        return key
    }

    static func completion(_ tenant: String, _ at: Int64, _ id: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.completion)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
        return key
    }

    /// `C`/`Q` month party 0 time id.
    static func posting(_ tenant: String, _ kind: UInt8, _ month: UInt16, _ party: String, _ at: Int64, _ id: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, kind, month: month)
        key.append(contentsOf: party.utf8)
        key.append(0)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
        return key
    }

    /// `M` month length name time id (the length keeps names with any bytes apart).
    static func namePostingPrefix(_ tenant: String, _ month: UInt16, _ name: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.namePosting, month: month)
        appendLengthPrefixed(name, to: &key)
        return key
    }

    static func namePosting(_ tenant: String, _ month: UInt16, _ name: String, _ at: Int64, _ id: String) -> [UInt8] {
        var key = namePostingPrefix(tenant, month, name)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
        return key
    }

    /// `W` month word 0 time id (words hold no 0 byte: letters, digits and marks only).
    static func notesWordPrefix(_ tenant: String, _ month: UInt16, _ word: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.notesWord, month: month)
        key.append(contentsOf: word.utf8)
        return key
    }

    static func notesWord(_ tenant: String, _ month: UInt16, _ word: String, _ at: Int64, _ id: String) -> [UInt8] {
        var key = notesWordPrefix(tenant, month, word)
        key.append(0)
        ViewKey.appendTime(at, to: &key)
        key.append(contentsOf: id.utf8)
        return key
    }

    static func name(_ tenant: String, _ name: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.name)
        key.append(contentsOf: name.utf8)
        return key
    }

    /// `N` word 0 name.
    static func nameWord(_ tenant: String, _ word: String, _ name: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.nameWord)
        key.append(contentsOf: word.utf8)
        key.append(0)
        key.append(contentsOf: name.utf8)
        return key
    }

    static func customer(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.customerRow, id) }
    static func product(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.productRow, id) }
    static func customerTally(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.customerTally, id) }
    static func productTally(_ tenant: String, _ id: String) -> [UInt8] { keyed(tenant, ViewKey.productTally, id) }
    static func totals(_ tenant: String) -> [UInt8] { ViewKey.prefix(tenant, ViewKey.totals) }

    static func day(_ tenant: String, _ day: Int64) -> [UInt8] {
        var key = ViewKey.prefix(tenant, ViewKey.day)
        ViewKey.appendDay(day, to: &key)
        return key
    }

    static func productSize(_ tenant: String, _ product: String, _ size: String) -> [UInt8] {
        var key = keyed(tenant, ViewKey.productSize, product)
        key.append(0)
        key.append(contentsOf: size.utf8)
        return key
    }

    static func productCustomer(_ tenant: String, _ product: String, _ customer: String) -> [UInt8] {
        var key = keyed(tenant, ViewKey.productCustomer, product)
        key.append(0)
        key.append(contentsOf: customer.utf8)
        return key
    }

    private static func keyed(_ tenant: String, _ kind: UInt8, _ id: String) -> [UInt8] {
        var key = ViewKey.prefix(tenant, kind)
        key.append(contentsOf: id.utf8)
        return key
    }

    static func appendLengthPrefixed(_ text: String, to key: inout [UInt8]) {
        let n = text.utf8.count
        key.append(UInt8(truncatingIfNeeded: n >> 8))
        key.append(UInt8(truncatingIfNeeded: n))
        key.append(contentsOf: text.utf8)
    }

    /// The time and id at the end of a key, after `offset` bytes of prefix.
    static func timeAndID(_ key: UnsafeRawBufferPointer, after offset: Int) -> (Int64, String) {
        (ViewKey.time(key, at: offset), String(decoding: UnsafeRawBufferPointer(rebasing: key[(offset + 8)...]), as: UTF8.self))
    }

    /// The projector's cache key of a request.
    static func cacheKey(_ tenant: String, _ id: String) -> HashedKey {
        var key = Array(tenant.utf8)
        key.append(0)
        key.append(contentsOf: id.utf8)
        return HashedKey(key)
    }

    /// A key for a message: its printable bytes, others as \xNN.
    static func describe(_ key: [UInt8]) -> String {
        key.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
    }
}
