import EventStore
import Projections

/// One tenant's query table, mapped into memory (see `TenantTable` for the layout). Every
/// section is checked the first time it is used; damage is a `ProjectionError.badSnapshot`.
/// Not thread-safe: one query uses a reader at a time.
public final class TenantTableReader {
    /// Where the table stands (tenant, log, positions).
    public let metadata: TenantTable.Metadata
    let file: MappedTableFile
    private var rowBlob: BlockBlobReader?
    private var keyed: [UInt32: KeyedPostingsReader] = [:]
    private var statusBytes: UnsafeRawBufferPointer?

    /// Opens the table at `path`; it must belong to `tenant`.
    public init(path: String, tenant: String) throws {
        file = try MappedTableFile(path: path)
        do { metadata = try TenantTable.Metadata(decoding: file.metadata) } catch {
            throw ProjectionError.badSnapshot(path: path, reason: "header: \(error)")
        }
        guard metadata.tenant == tenant else {
            throw ProjectionError.badSnapshot(path: path, reason: "holds tenant \(metadata.tenant), not \(tenant)")
        }
    }

    /// Number of requests.
    public var rowCount: Int { metadata.rows }

    func column<T: FixedWidthInteger>(_ kind: UInt32, _ type: T.Type) throws -> IntegerColumn<T> {
        let column = try file.integers(kind, as: type)
        guard column.count == rowCount else { throw bad("section \(kind) has \(column.count) values for \(rowCount) requests") }
        return column
    }

    /// The status column (one byte per request, each checked once to be a status).
    func statuses() throws -> UnsafeRawBufferPointer {
        if let statusBytes { return statusBytes }
        let bytes = try file.section(TenantTable.Section.status)
        guard bytes.count == rowCount, bytes.allSatisfy({ $0 < RecordStatus.allCases.count }) else { throw bad("status section is malformed") }
        statusBytes = bytes
        return bytes
    }

    /// The names of the sizes, by number (section `size` holds the numbers).
    func sizeNames() throws -> [String] {
        var r = BinaryReader(bytes: Array(try file.section(TenantTable.Section.sizeNames)))
        do { return try r.strings() } catch { throw bad("size names do not decode") }
    }

    /// The request with this ordinal.
    func row(_ ordinal: Int) throws -> RecordRow {
        var reader = try rowReader(ordinal)
        do { return try RecordRow(from: &reader) } catch { throw bad("request \(ordinal) does not decode") }
    }

    /// The id of the request with this ordinal (decodes only the id).
    func rowID(_ ordinal: Int) throws -> String {
        var reader = try rowReader(ordinal)
        do { return try reader.string() } catch { throw bad("request \(ordinal) does not decode") }
    }

    private func rowReader(_ ordinal: Int) throws -> BinaryReader {
        let locators = try column(TenantTable.Section.rowLocator, UInt64.self)
        guard ordinal >= 0 && ordinal < rowCount else { throw bad("request ordinal \(ordinal) out of range") }
        if rowBlob == nil { rowBlob = try BlockBlobReader(file, blocksKind: TenantTable.Section.rowBlocks, indexKind: TenantTable.Section.rowBlockIndex) }
        guard let blob = rowBlob else { throw bad("no request blocks") }
        let (block, offset) = try blob.item(locators[ordinal])
        return BinaryReader(bytes: block, at: offset)
    }

    /// The ordinal of the request `id`, or nil.
    func ordinal(ofRecord id: String) throws -> Int? {
        let order = try column(TenantTable.Section.idOrder, UInt32.self)
        let at = try firstIndex(notBelow: id, count: order.count) { try rowID(Int(order[$0])) }
        guard at < order.count, try rowID(Int(order[at])) == id else { return nil }
        return Int(order[at])
    }

    /// Customers (`TenantTable.Section.customers`), products or tokens.
    func keyedPostings(_ base: UInt32) throws -> KeyedPostingsReader {
        if let reader = keyed[base] { return reader }
        let reader = try KeyedPostingsReader(file, base: base, rows: rowCount)
        keyed[base] = reader
        return reader
    }

    /// A customer by ordinal: its id, and its row if it was registered.
    func customer(_ ordinal: Int) throws -> (id: String, row: CustomerRow?) {
        var r = try keyedPostings(TenantTable.Section.customers).item(ordinal)
        do { return (try r.string(), try r.bool() ? try CustomerRow(from: &r) : nil) } catch { throw bad("customer \(ordinal) does not decode") }
    }

    /// A product by ordinal: its id, and its row if it was registered.
    func product(_ ordinal: Int) throws -> (id: String, row: ProductRow?) {
        var r = try keyedPostings(TenantTable.Section.products).item(ordinal)
        do { return (try r.string(), try r.bool() ? try ProductRow(from: &r) : nil) } catch { throw bad("product \(ordinal) does not decode") }
    }

    func bad(_ reason: String) -> ProjectionError { .badSnapshot(path: file.path, reason: reason) }
}

/// Sorted keys with their postings (see `KeyedPostings`), read in place. The postings
/// sections are checked only when a query first needs postings: looking up a name does not
/// touch (or keep resident) the lists of requests.
final class KeyedPostingsReader {
    let count: Int
    private let file: MappedTableFile
    private let base: UInt32
    private let locators: IntegerColumn<UInt64>
    private let blob: BlockBlobReader
    private var lists: (starts: IntegerColumn<UInt64>, postings: IntegerColumn<UInt32>)?
    private let path: String

    init(_ file: MappedTableFile, base: UInt32, rows: Int) throws {
        self.file = file
        self.base = base
        path = file.path
        locators = try file.integers(base, as: UInt64.self)
        blob = try BlockBlobReader(file, blocksKind: base + 1, indexKind: base + 2)
        count = locators.count
    }

    private func postingLists() throws -> (starts: IntegerColumn<UInt64>, postings: IntegerColumn<UInt32>) {
        if let lists { return lists }
        let starts = try file.integers(base + 3, as: UInt64.self), postings = try file.integers(base + 4, as: UInt32.self)
        guard starts.count == count + 1, starts[0] == 0, starts[count] == UInt64(postings.count) else {
            throw ProjectionError.badSnapshot(path: path, reason: "section \(base + 3): posting starts are malformed")
        }
        lists = (starts, postings)
        return (starts, postings)
    }

    /// A reader positioned at item `index` (its key comes first).
    func item(_ index: Int) throws -> BinaryReader {
        guard index >= 0 && index < count else { throw ProjectionError.badSnapshot(path: path, reason: "key \(index) out of range") }
        let (block, offset) = try blob.item(locators[index])
        return BinaryReader(bytes: block, at: offset)
    }

    /// The key of item `index`.
    func key(_ index: Int) throws -> String {
        var r = try item(index)
        do { return try r.string() } catch { throw ProjectionError.badSnapshot(path: path, reason: "key \(index) does not decode") }
    }

    /// The first index whose key is not below `key`.
    func lowerBound(_ key: String) throws -> Int {
        try firstIndex(notBelow: key, count: count) { try self.key($0) }
    }

    /// The index of `key`, or nil.
    func find(_ key: String) throws -> Int? {
        let at = try lowerBound(key)
        guard at < count else { return nil }
        return try self.key(at) == key ? at : nil
    }

    /// The ordinals of item `index`'s requests, ascending; each checked against `rows`.
    func postings(_ index: Int, rows: Int) throws -> [UInt32] {
        let (starts, postings) = try postingLists()
        guard index >= 0 && index < count else { throw ProjectionError.badSnapshot(path: path, reason: "key \(index) out of range") }
        guard let start = Int(exactly: starts[index]), let end = Int(exactly: starts[index + 1]), start <= end, end <= postings.count else { throw ProjectionError.badSnapshot(path: path, reason: "postings of key \(index) out of range") }
        var list: [UInt32] = []
        list.reserveCapacity(end - start)
        for i in start..<end {
            let ordinal = postings[i]
            guard Int(ordinal) < rows, list.last.map({ $0 < ordinal }) ?? true else {
                throw ProjectionError.badSnapshot(path: path, reason: "postings of key \(index) are not ascending request ordinals")
            }
            list.append(ordinal)
        }
        return list
    }
}

/// The first index in `0..<count` whose key is not below `target`, for keys that ascend.
func firstIndex(notBelow target: String, count: Int, key: (Int) throws -> String) rethrows -> Int {
    var low = 0, high = count
    while low < high {
        let mid = (low + high) / 2
        if try key(mid) < target { low = mid + 1 } else { high = mid }
    }
    return low
}
