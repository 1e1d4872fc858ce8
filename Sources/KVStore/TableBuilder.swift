import EventLog

/// What a finished table file holds (recorded in the manifest).
struct TableInfo: Sendable, Equatable {
    /// The file's number (its name is `NNNNNN.sst`).
    var number: UInt64
    /// Bytes on disk.
    var size: Int64
    /// Entries, deletions included.
    var entries: Int64
    /// The first and last key.
    var smallest: [UInt8]
    var largest: [UInt8]
    /// Level 0: the flush (or level-0 merge) that wrote it, numbered by its first file, so
    /// that the files of one memtable count as one sorted run. 0 in sorted levels.
    var run: UInt64 = 0
}

/// Writes one table file from entries given in strictly increasing key order (docs/KVSTORE.md,
/// "Table file"): data blocks, the filter, the index, the footer. Output is buffered and
/// written in pieces of about 1 MiB; `finish` syncs the file.
final class TableBuilder {
    let path: String
    let number: UInt64
    private let file: any StorageFile
    private let options: KVOptions
    private let block: BlockBuilder
    private let index: BlockBuilder
    private var pending: [UInt8] = []
    private var scratch: [UInt8] = []
    private var written: Int64 = 0
    private var hashes: [UInt64] = []
    private var smallest: [UInt8]?
    private let lastKey = ByteBuffer()
    private let blockFirstKey = ByteBuffer()
    private(set) var entries: Int64 = 0

    init(storage: any Storage, path: String, number: UInt64, options: KVOptions) throws {
        self.path = path
        self.number = number
        self.options = options
        block = BlockBuilder(restartInterval: options.restartInterval)
        index = BlockBuilder(restartInterval: 1)
        pending.reserveCapacity(1 << 20 + (64 << 10))
        do { file = try storage.open(path, create: true, writable: true) } catch { throw KVError.wrap(error) }
        do { try file.truncate(to: 0) } catch {
            file.close()
            throw KVError.wrap(error)
        }
    }

    /// The last key added.
    var lastKeyBytes: UnsafeRawBufferPointer { lastKey.bytes }

    /// Bytes the file will have, about (written plus buffered).
    var estimatedBytes: Int64 { written + Int64(pending.count + block.estimatedBytes) }

    /// Adds an entry; its key must be greater than the previous one.
    func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, deleted: Bool) throws {
        let shared = entries == 0 ? 0 : KeyOrder.sharedPrefix(lastKey.bytes, key)
        precondition(entries == 0 || KeyOrder.follows(key, lastKey.bytes, sharing: shared), "table keys must be added in strictly increasing order")
        if smallest == nil { smallest = Array(key) }
        if options.bloomBitsPerKey > 0 { hashes.append(KeyHash.of(key)) }
        if block.isEmpty { blockFirstKey.set(key) }
        block.add(key, value, deleted: deleted, sharedWithPrevious: shared)
        lastKey.set(key)
        entries += 1
        if block.estimatedBytes >= options.blockBytes { try finishDataBlock() }
    }

    private func finishDataBlock() throws {
        guard !block.isEmpty else { return }
        let offset = written + Int64(pending.count)
        let handle = try block.finish { try TableFormat.appendBlock($0, codec: options.codec, offset: offset, scratch: &scratch, to: &pending) }
        // Index entry: the block's last key → its handle and its first key (compactions use
        // the first keys to see which key ranges a file really covers).
        var value: [UInt8] = []
        handle.encode(into: &value)
        value.append(contentsOf: blockFirstKey.bytes)
        // Every index entry is a restart point (interval 1): it stores its whole key.
        value.withUnsafeBytes { v in index.add(lastKey.bytes, v, deleted: false, sharedWithPrevious: 0) }
        if pending.count >= 1 << 20 { try writePending() }
    }

    private func writePending() throws {
        guard !pending.isEmpty else { return }
        do { try pending.withUnsafeBytes { try file.write($0, at: written) } } catch { throw KVError.wrap(error) }
        written += Int64(pending.count)
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes the rest (last block, filter, index, footer), syncs and closes the file.
    func finish() throws -> TableInfo {
        precondition(entries > 0, "an empty table is never written")
        defer { file.close() }
        try finishDataBlock()
        var filter: TableFormat.Handle?
        if options.bloomBitsPerKey > 0 {
            let bits = BloomFilter.build(hashes: hashes, bitsPerKey: options.bloomBitsPerKey)
            let offset = written + Int64(pending.count)
            filter = try bits.withUnsafeBytes { try TableFormat.appendBlock($0, codec: .none, offset: offset, scratch: &scratch, to: &pending) }
        }
        let indexOffset = written + Int64(pending.count)
        let indexHandle = try index.finish { try TableFormat.appendBlock($0, codec: options.codec, offset: indexOffset, scratch: &scratch, to: &pending) }
        pending.append(contentsOf: TableFormat.Footer(index: indexHandle, filter: filter).encoded())
        try writePending()
        if options.sync { do { try file.sync() } catch { throw KVError.wrap(error) } }
        return TableInfo(number: number, size: written, entries: entries, smallest: smallest ?? [], largest: lastKey.array)
    }

    /// Closes the file without finishing it (the caller removes it).
    func abandon() { file.close() }
}
