import EventLog
import Synchronization

/// An open table file: its footer, its index block and (once a point lookup needed it)
/// its filter, held for as long as the file is open; data blocks through the shared block
/// cache (docs/KVSTORE.md, "Reading"). Held, not cached: a lookup that misses must not
/// re-read a filter that data blocks pushed out of the cache.
final class TableReader: Sendable {
    let number: UInt64
    let path: String
    let size: Int64
    private let file: any StorageFile
    private let footer: TableFormat.Footer
    private let cache: BlockCache
    private let index: Block
    private let filter = Mutex<Block?>(nil)

    init(storage: any Storage, path: String, number: UInt64, cache: BlockCache) throws {
        self.number = number
        self.path = path
        self.cache = cache
        let file: any StorageFile
        do { file = try storage.open(path, create: false, writable: false) } catch { throw KVError.wrap(error) }
        self.file = file
        do {
            let size = try file.size()
            self.size = size
            guard size >= Int64(TableFormat.footerBytes) else {
                throw KVError.corrupt(path: path, offset: 0, reason: "file of \(size) bytes is shorter than a table's footer")
            }
            var raw = [UInt8](repeating: 0, count: TableFormat.footerBytes)
            let n = try raw.withUnsafeMutableBytes { try file.read(into: $0, at: size - Int64(TableFormat.footerBytes)) }
            guard n == TableFormat.footerBytes else { throw KVError.corrupt(path: path, offset: size, reason: "footer cut short") }
            let footer = try raw.withUnsafeBytes { try TableFormat.Footer.decode($0, path: path, fileSize: size) }
            self.footer = footer
            index = try Self.read(footer.index, raw: false, file: file, path: path)
        } catch {
            file.close()
            throw KVError.wrap(error)
        }
    }

    deinit { file.close() }

    /// A block, from the cache or read, checked and decoded.
    func block(_ handle: TableFormat.Handle, raw: Bool = false) throws -> Block {
        let key = BlockCache.Key(table: number, offset: handle.offset)
        if let cached = cache.lookup(key) { return cached }
        let block = try Self.read(handle, raw: raw, file: file, path: path)
        cache.insert(key, block)
        return block
    }

    /// A block read from the file, checked and decoded.
    private static func read(_ handle: TableFormat.Handle, raw: Bool, file: any StorageFile, path: String) throws -> Block {
        let stored = UnsafeMutableRawBufferPointer.allocate(byteCount: handle.size + TableFormat.trailerBytes, alignment: 8)
        defer { stored.deallocate() }
        let n: Int
        do { n = try file.read(into: stored, at: handle.offset) } catch { throw KVError.wrap(error) }
        guard n == stored.count else {
            throw KVError.corrupt(path: path, offset: handle.offset, reason: "file ends after \(n) of the block's \(stored.count) bytes")
        }
        let decoded = try TableFormat.decodeBlock(UnsafeRawBufferPointer(stored), handle: handle, path: path)
        return try Block(taking: decoded, path: path, fileOffset: handle.offset, raw: raw)
    }

    /// The filter, if a lookup has read it.
    var loadedFilter: Block? { filter.withLock { $0 } }

    /// Whether the key with `hash` may be in this file (always true without a filter).
    func mayContain(hash: UInt64) throws -> Bool {
        guard let handle = footer.filter else { return true }
        let bits: Block
        if let held = loadedFilter {
            bits = held
        } else {
            bits = try Self.read(handle, raw: true, file: file, path: path)
            filter.withLock { $0 = bits }
        }
        return BloomFilter.mayContain(bits.bytes, hash: hash)
    }

    /// The entry of `key` in this file: calls `body` with its value (or nil for a deletion)
    /// and returns true, or returns false when the file does not hold the key.
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64, _ body: (UnsafeRawBufferPointer?) throws -> Void) throws -> Bool {
        guard try mayContain(hash: hash) else { return false }
        let index = BlockIterator(self.index)
        try index.seek(key)
        guard index.isValid else { return false }
        guard let handle = TableFormat.Handle.decode(index.value) else {
            throw KVError.corrupt(path: path, offset: footer.index.offset, reason: "index entry does not hold a block handle")
        }
        let data = BlockIterator(try block(handle))
        try data.seek(key)
        guard data.isValid, KeyOrder.compare(data.key, key) == 0 else { return false }
        try body(data.isDeletion ? nil : data.value)
        return true
    }

    /// The handles of the data blocks, in file order (from the index block), each checked
    /// to lie after the one before it and before the filter and index blocks.
    func dataBlockHandles() throws -> [TableFormat.Handle] {
        let index = BlockIterator(self.index)
        let dataEnd = min(footer.index.offset, footer.filter?.offset ?? .max)
        var handles: [TableFormat.Handle] = []
        var end: Int64 = 0
        try index.seekToFirst()
        while index.isValid {
            guard let handle = TableFormat.Handle.decode(index.value) else {
                throw KVError.corrupt(path: path, offset: footer.index.offset, reason: "index entry does not hold a block handle")
            }
            guard handle.offset >= end, Int64(handle.size + TableFormat.trailerBytes) <= dataEnd - handle.offset else {
                throw KVError.corrupt(path: path, offset: footer.index.offset,
                                      reason: "the index puts a data block at \(handle.offset)+\(handle.size), outside \(end)..<\(dataEnd)")
            }
            end = handle.offset + Int64(handle.size + TableFormat.trailerBytes)
            handles.append(handle)
            try index.next()
        }
        return handles
    }

    /// Where the index block starts (what a damaged index is reported at).
    var indexOffset: Int64 { footer.index.offset }

    /// Reads the file's bytes at `offset` (for a reader that does its own buffering); returns
    /// how many were read (fewer at the end of the file).
    func readRaw(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        do { return try file.read(into: buffer, at: offset) } catch { throw KVError.wrap(error) }
    }

    /// An iterator over the index block (one entry per data block: its last key).
    func indexIterator() throws -> BlockIterator { BlockIterator(index) }

    /// An iterator over every entry of the file.
    func makeIterator() throws -> TableIterator { TableIterator(table: self, index: BlockIterator(index)) }
}

/// Walks a table file in key order: the index block, then each data block it points to.
final class TableIterator: SortedIterator {
    private let table: TableReader
    private let index: BlockIterator
    private var data: BlockIterator?

    init(table: TableReader, index: BlockIterator) {
        self.table = table
        self.index = index
    }

    private func loadData() throws -> Bool {
        guard index.isValid else {
            data = nil
            return false
        }
        guard let handle = TableFormat.Handle.decode(index.value) else {
            throw KVError.corrupt(path: table.path, offset: index.block.fileOffset, reason: "index entry does not hold a block handle")
        }
        data = BlockIterator(try table.block(handle))
        return true
    }

    override func seekToFirst() throws {
        try index.seekToFirst()
        if try loadData() { try data?.seekToFirst() }
        try skipEmptyForward()
    }

    override func seekToLast() throws {
        try index.seekToLast()
        if try loadData() { try data?.seekToLast() }
        try skipEmptyBackward()
    }

    override func seek(_ target: UnsafeRawBufferPointer) throws {
        try index.seek(target)
        if try loadData() { try data?.seek(target) }
        try skipEmptyForward()
    }

    override func next() throws {
        try data?.next()
        try skipEmptyForward()
    }

    override func prev() throws {
        try data?.prev()
        try skipEmptyBackward()
    }

    private func skipEmptyForward() throws {
        while let data, !data.isValid {
            guard index.isValid else { break }
            try index.next()
            if try loadData() { try self.data?.seekToFirst() }
        }
        publishData()
    }

    private func skipEmptyBackward() throws {
        while let data, !data.isValid {
            guard index.isValid else { break }
            try index.prev()
            if try loadData() { try self.data?.seekToLast() }
        }
        publishData()
    }

    @inline(__always)
    private func publishData() {
        guard let data, data.isValid else {
            isValid = false
            return
        }
        isValid = true
        key = data.key
        value = data.value
        isDeletion = data.isDeletion
    }
}
