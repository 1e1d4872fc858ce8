import EventLog
import EventStore
import Projections

/// One tenant's book as a query table: a memory-mapped file written beside each snapshot of
/// the records view, so that a query reads only its tenant's file, and only the parts of
/// it the question needs (docs/PROJECTIONS.md, "Query tables").
///
/// Requests are numbered by *ordinal*: their rank in (requested time, id) order, so a
/// time range is a range of ordinals and the records list needs no sort. Per request,
/// fixed-width columns; the full rows in lz4 blocks. Customers, products and search
/// tokens are sorted by key, each with the ordinals of its requests (postings).
public enum TenantTable {
    /// Bumped when the layout or meaning of a section changes.
    static let layoutVersion: Int64 = 3

    /// Section kinds. Keyed postings (customers, products, tokens) take five kinds from a
    /// base: locators, blocks, block index, posting starts, postings.
    enum Section {
        static let requestedAt: UInt32 = 1, completedAt: UInt32 = 2, quantity: UInt32 = 3, delivered: UInt32 = 4
        static let status: UInt32 = 5, customer: UInt32 = 6, product: UInt32 = 7
        static let rowLocator: UInt32 = 8, rowBlocks: UInt32 = 9, rowBlockIndex: UInt32 = 10, idOrder: UInt32 = 11
        static let pendingTimes: UInt32 = 12, summary: UInt32 = 13, size: UInt32 = 14, sizeNames: UInt32 = 15
        static let customers: UInt32 = 20, products: UInt32 = 30, tokens: UInt32 = 40
    }

    /// The file that holds `tenant`'s table in a snapshot's table directory: the hex of its
    /// UTF-8 bytes (ingest accepts tenant ids of at most 64 bytes). A tenant id too long for
    /// a file name gets no table (nil): its queries catch the view up in memory.
    public static func fileName(tenant: String) -> String? {
        let bytes = Array(tenant.utf8)
        guard !bytes.isEmpty && bytes.count <= 120 else { return nil }
        return bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() + ".table"
    }

    /// The tenant a table file is named for, or nil when the name is not a table's.
    static func tenant(fromFileName name: String) -> String? {
        guard name.hasSuffix(".table") else { return nil }
        let hex = Array(name.dropLast(".table".count).utf8)
        guard !hex.isEmpty, hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let byte = UInt8(String(decoding: hex[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// What a table's header says about where it stands.
    public struct Metadata: Sendable, Equatable {
        /// The tenant.
        public var tenant: String
        /// The log it was made from.
        public var logID: String
        /// For each partition, the offset of the next event the view had not applied.
        public var positions: [Int64]
        /// For each partition, the id of the last event applied.
        public var lastEventIDs: [EventID?]
        /// Requests in the table.
        public var rows: Int

        func encoded() -> [UInt8] {
            var w = BinaryWriter()
            w.int(TenantTable.layoutVersion); w.int(Int64(RecordsView.version))
            w.string(tenant); w.string(logID); w.int(Int64(rows))
            w.int(Int64(positions.count))
            for (position, last) in zip(positions, lastEventIDs) {
                w.int(position)
                w.int(Int64(bitPattern: last?.high ?? 0)); w.int(Int64(bitPattern: last?.low ?? 0))
            }
            return w.bytes
        }

        init(tenant: String, logID: String, positions: [Int64], lastEventIDs: [EventID?], rows: Int) {
            self.tenant = tenant
            self.logID = logID
            self.positions = positions
            self.lastEventIDs = lastEventIDs
            self.rows = rows
        }

        init(decoding bytes: [UInt8]) throws {
            var r = BinaryReader(bytes: bytes)
            guard try r.int() == TenantTable.layoutVersion else { throw TableLayoutError("unknown table layout version") }
            let viewVersion = try r.int()
            guard viewVersion == Int64(RecordsView.version) else {
                throw TableLayoutError("written by records view version \(viewVersion), this build's is \(RecordsView.version)")
            }
            tenant = try r.string(); logID = try r.string()
            let rows = try r.int()
            guard rows >= 0 && rows <= Int64(UInt32.max) else { throw TableLayoutError("request count \(rows) out of range") }
            self.rows = Int(rows)
            let partitions = try r.count()
            positions = []; lastEventIDs = []
            for _ in 0..<partitions {
                positions.append(try r.int())
                let high = UInt64(bitPattern: try r.int()), low = UInt64(bitPattern: try r.int())
                lastEventIDs.append(high == 0 && low == 0 ? nil : EventID(high: high, low: low))
            }
        }
    }

    /// Writes one table file per tenant of `projected` into `directory` (each fdatasynced).
    public static func writeAll(_ projected: ProjectedView<RecordsView>, logID: String?, to directory: String, storage: any Storage) throws {
        for (tenant, book) in projected.view.tenants {
            guard let name = fileName(tenant: tenant) else { continue }
            let metadata = Metadata(tenant: tenant, logID: logID ?? "", positions: projected.positions,
                                    lastEventIDs: projected.lastEventIDs, rows: book.records.count)
            try encode(book, metadata: metadata).write(to: directory + "/" + name, storage: storage)
        }
    }

    /// The table of one tenant's book.
    static func encode(_ book: TenantBook, metadata: Metadata) throws -> TableFileWriter {
        let rows = book.records.values.sorted { ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
        // Parties: every registered customer (product) and every one a request names.
        let customerIDs = Array(Set(book.customers.keys).union(rows.map(\.customerId))).sorted()
        let productIDs = Array(Set(book.products.keys).union(rows.map(\.productId))).sorted()
        let customerOrdinal = Dictionary(uniqueKeysWithValues: customerIDs.enumerated().map { ($1, UInt32($0)) })
        let productOrdinal = Dictionary(uniqueKeysWithValues: productIDs.enumerated().map { ($1, UInt32($0)) })

        var file = TableFileWriter(metadata: metadata.encoded())
        var blob = BlockBlobWriter()
        var locators: [UInt64] = [], customerOf: [UInt32] = [], productOf: [UInt32] = []
        var customerPostings = [[UInt32]](repeating: [], count: customerIDs.count)
        var productPostings = [[UInt32]](repeating: [], count: productIDs.count)
        var tokenPostings: [String: [UInt32]] = [:]
        var pending: [Int64] = []
        var summary = DashboardBuilder<UInt32, UInt32>()
        locators.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() {
            let ordinal = UInt32(i)
            var w = BinaryWriter()
            r.encode(into: &w)
            locators.append(try blob.append(w.bytes))
            let c = customerOrdinal[r.customerId] ?? 0, p = productOrdinal[r.productId] ?? 0
            customerOf.append(c); productOf.append(p)
            customerPostings[Int(c)].append(ordinal)
            productPostings[Int(p)].append(ordinal)
            for word in Set(SearchText.words(of: r)) { tokenPostings[word, default: []].append(ordinal) }
            if r.status == .pending { pending.append(r.requestedAt) }
            summary.add(ordinal, requestedAt: r.requestedAt, status: r.status, quantity: r.quantity, delivered: r.delivered,
                        completedAt: r.completedAt, customer: c, product: p)
        }
        file.add(kind: Section.requestedAt, integers: rows.map(\.requestedAt))
        file.add(kind: Section.completedAt, integers: rows.map { $0.completedAt ?? .min })
        file.add(kind: Section.quantity, integers: rows.map(\.quantity))
        file.add(kind: Section.delivered, integers: rows.map(\.delivered))
        file.add(kind: Section.status, rows.map { UInt8($0.status.index) })
        // Sizes by number (few distinct ones): a product's backlog per size reads no rows.
        let sizeNames = Array(Set(rows.compactMap(\.size))).sorted()
        guard sizeNames.count < Int(UInt16.max) else { throw TableLayoutError("too many distinct sizes (\(sizeNames.count))") }
        let sizeNumber = Dictionary(uniqueKeysWithValues: sizeNames.enumerated().map { ($1, UInt16($0)) })
        file.add(kind: Section.size, integers: rows.map { $0.size.flatMap { sizeNumber[$0] } ?? UInt16.max })
        var names = BinaryWriter()
        names.strings(sizeNames)
        file.add(kind: Section.sizeNames, names.bytes)
        file.add(kind: Section.customer, integers: customerOf)
        file.add(kind: Section.product, integers: productOf)
        file.add(kind: Section.rowLocator, integers: locators)
        try blob.finish(into: &file, blocksKind: Section.rowBlocks, indexKind: Section.rowBlockIndex)
        file.add(kind: Section.idOrder, integers: rows.indices.sorted { rows[$0].id < rows[$1].id }.map { UInt32($0) })
        file.add(kind: Section.pendingTimes, integers: pending)
        file.add(kind: Section.summary, encodeSummary(summary.parts()))

        // Items: the key, then whether it was registered and its row.
        func items(_ keys: [String], _ payload: (String, inout BinaryWriter) -> Void) -> [[UInt8]] {
            keys.map { key in
                var w = BinaryWriter()
                w.string(key)
                payload(key, &w)
                return w.bytes
            }
        }
        try KeyedPostings.write(items(customerIDs) { id, w in
            if let c = book.customers[id] { w.bool(true); c.encode(into: &w) } else { w.bool(false) }
        }, postings: customerPostings, base: Section.customers, into: &file)
        try KeyedPostings.write(items(productIDs) { id, w in
            if let p = book.products[id] { w.bool(true); p.encode(into: &w) } else { w.bool(false) }
        }, postings: productPostings, base: Section.products, into: &file)
        let tokens = tokenPostings.keys.sorted()
        try KeyedPostings.write(items(tokens) { _, _ in }, postings: tokens.map { tokenPostings[$0] ?? [] }, base: Section.tokens, into: &file)
        return file
    }

    static func encodeSummary(_ parts: DashboardParts<UInt32, UInt32>) -> [UInt8] {
        var w = BinaryWriter()
        let d = parts.totals
        w.int(Int64(d.requests))
        for dictionary in [d.byStatus, d.byDeliveryState, d.requestsPerDay] {
            w.int(Int64(dictionary.count))
            for (key, value) in dictionary.sorted(by: { $0.key < $1.key }) { w.string(key); w.int(Int64(value)) }
        }
        w.int(d.totalQuantity); w.int(d.deliveredQuantity); w.int(d.outstandingQuantity)
        w.bool(d.averageProcessingHours != nil)
        w.int(Int64(bitPattern: (d.averageProcessingHours ?? 0).bitPattern))
        for list in [parts.oldestPending, parts.recentCompletions] {
            w.int(Int64(list.count))
            for ordinal in list { w.int(Int64(ordinal)) }
        }
        for top in [parts.topCustomers, parts.topProducts] {
            w.int(Int64(top.count))
            for (party, outstanding) in top { w.int(Int64(party)); w.int(outstanding) }
        }
        return w.bytes
    }

    static func decodeSummary(_ bytes: [UInt8]) throws -> DashboardParts<UInt32, UInt32> {
        var r = BinaryReader(bytes: bytes)
        var d = Dashboard()
        d.requests = Int(try r.int())
        var dictionaries: [[String: Int]] = []
        for _ in 0..<3 {
            var dictionary: [String: Int] = [:]
            for _ in 0..<(try r.count()) { dictionary[try r.string()] = Int(try r.int()) }
            dictionaries.append(dictionary)
        }
        (d.byStatus, d.byDeliveryState, d.requestsPerDay) = (dictionaries[0], dictionaries[1], dictionaries[2])
        d.totalQuantity = try r.int(); d.deliveredQuantity = try r.int(); d.outstandingQuantity = try r.int()
        let hasAverage = try r.bool()
        let average = Double(bitPattern: UInt64(bitPattern: try r.int()))
        d.averageProcessingHours = hasAverage ? average : nil
        func ordinal() throws -> UInt32 {
            let value = try r.int()
            guard let ordinal = UInt32(exactly: value) else { throw BinaryReader.Truncated() }
            return ordinal
        }
        let oldest = try (0..<(try r.count())).map { _ in try ordinal() }
        let recent = try (0..<(try r.count())).map { _ in try ordinal() }
        let customers = try (0..<(try r.count())).map { _ in (try ordinal(), try r.int()) }
        let products = try (0..<(try r.count())).map { _ in (try ordinal(), try r.int()) }
        return DashboardParts(totals: d, oldestPending: oldest, recentCompletions: recent, topCustomers: customers, topProducts: products)
    }
}

/// A table layout problem found while decoding (reported as a bad snapshot).
struct TableLayoutError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Keys sorted ascending, each with an item (the key first, as a string, then any payload)
/// and a list of request ordinals: five sections from a base kind.
enum KeyedPostings {
    static func write(_ items: [[UInt8]], postings: [[UInt32]], base: UInt32, into file: inout TableFileWriter) throws {
        var blob = BlockBlobWriter()
        var locators: [UInt64] = [], starts: [UInt64] = [0], all: [UInt32] = []
        for (item, list) in zip(items, postings) {
            locators.append(try blob.append(item))
            all += list
            starts.append(UInt64(all.count))
        }
        file.add(kind: base, integers: locators)
        try blob.finish(into: &file, blocksKind: base + 1, indexKind: base + 2)
        file.add(kind: base + 3, integers: starts)
        file.add(kind: base + 4, integers: all)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
