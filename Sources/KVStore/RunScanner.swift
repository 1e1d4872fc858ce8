import EventLog

/// Walks every entry of a run of table files — files that do not overlap, in key order —
/// forward from the first: what a compaction reads. One object does the work of a level,
/// table and block iterator: it reads each file's data blocks in file order through a
/// window of its own (one read for many blocks), checks each block's checksum, and decodes
/// the entries in place, without the block cache. A compaction reads each block once, and
/// the blocks it would cache belong to files it is about to delete: through the cache, it
/// pushed out the blocks that point lookups were using (LevelDB reads compaction inputs
/// with `fill_cache = false` for the same reason).
///
/// Memory: the window (`windowBytes`, or one block while a block is larger) and one
/// decompressed block (as large as the largest so far). Only `seekToFirst` and `next` are
/// supported.
final class RunScanner: SortedIterator {
    private let files: [TableHandle]
    private var fileIndex = -1
    private var reader: TableReader?
    private var blocks: [TableFormat.Handle] = []
    private var blockIndex = 0
    /// Entries decoded from the current file: at its end, they must be as many as the
    /// manifest says it holds (an index block that lost entries would otherwise lose
    /// them from the compaction's output without a word).
    private var entriesRead: Int64 = 0

    /// File bytes at `windowOffset` in the current file.
    private var window: UnsafeMutableRawBufferPointer
    private var windowOffset: Int64 = 0
    private var windowCount = 0
    /// The current block's decompressed bytes (lz4 blocks only).
    private var decoded: UnsafeMutableRawBufferPointer

    /// The current block's entries: `base[position..<entriesEnd]` is what is left of them.
    private var base: UnsafeRawPointer?
    private var position = 0
    private var entriesEnd = 0
    /// The current block's offset in its file (for error messages).
    private var blockOffset: Int64 = 0
    private let keyBuffer = ByteBuffer()

    static let windowBytes = 256 << 10

    init(files: [TableHandle]) {
        self.files = files
        window = .allocate(byteCount: Self.windowBytes, alignment: 16)
        decoded = .allocate(byteCount: 8 << 10, alignment: 16)
    }

    deinit {
        window.deallocate()
        decoded.deallocate()
    }

    override func seekToFirst() throws {
        fileIndex = -1
        reader = nil
        entriesRead = 0
        blocks = []
        blockIndex = 0
        base = nil
        position = 0
        entriesEnd = 0
        try advance()
    }

    override func next() throws {
        precondition(isValid, "next() on an invalid run scanner")
        try advance()
    }

    override func seekToLast() throws { preconditionFailure("a run scanner only walks forward from the first entry") }
    override func seek(_ key: UnsafeRawBufferPointer) throws { preconditionFailure("a run scanner only walks forward from the first entry") }
    override func prev() throws { preconditionFailure("a run scanner only walks forward from the first entry") }

    /// Decodes the next entry, moving to the next block or file as they run out.
    private func advance() throws {
        while position >= entriesEnd {
            guard try nextBlock() else {
                isValid = false
                return
            }
        }
        guard let base else { preconditionFailure("run scanner: entries without a block") }
        var p = position
        let end = entriesEnd
        // Most entries have a one-byte shared length, key length and value field.
        var shared: UInt64, unshared: UInt64, valueField: UInt64
        if p + 3 <= end, case let b0 = base.load(fromByteOffset: p, as: UInt8.self), case let b1 = base.load(fromByteOffset: p + 1, as: UInt8.self),
           case let b2 = base.load(fromByteOffset: p + 2, as: UInt8.self), (b0 | b1 | b2) < 0x80 {
            shared = UInt64(b0); unshared = UInt64(b1); valueField = UInt64(b2)
            p += 3
        } else {
            guard let s = ByteCoding.readVarint(base, &p, end: end), let u = ByteCoding.readVarint(base, &p, end: end),
                  let v = ByteCoding.readVarint(base, &p, end: end) else {
                throw corrupt("entry at \(position) has a malformed header")
            }
            shared = s; unshared = u; valueField = v
        }
        let valueLength = valueField >> 1
        guard shared <= UInt64(keyBuffer.count), unshared <= UInt64(end - p), valueLength <= UInt64(end - p) - unshared else {
            throw corrupt("entry at \(position) runs past its block (shared \(shared), key \(unshared), value \(valueLength) bytes)")
        }
        keyBuffer.truncate(to: Int(shared))
        keyBuffer.append(UnsafeRawBufferPointer(start: base + p, count: Int(unshared)))
        p += Int(unshared)
        entriesRead += 1
        isValid = true
        key = keyBuffer.bytes
        value = UnsafeRawBufferPointer(start: base + p, count: Int(valueLength))
        isDeletion = valueField & 1 != 0
        position = p + Int(valueLength)
    }

    /// Loads the next data block (of this file or the next); false when the run is done.
    private func nextBlock() throws -> Bool {
        while blockIndex >= blocks.count {
            if let reader, entriesRead != files[fileIndex].info.entries {
                throw KVError.corrupt(path: reader.path, offset: reader.indexOffset,
                                      reason: "the blocks the index lists hold \(entriesRead) entries, the MANIFEST says the file holds \(files[fileIndex].info.entries)")
            }
            entriesRead = 0
            fileIndex += 1
            guard fileIndex < files.count else {
                reader = nil
                return false
            }
            let table = try files[fileIndex].reader()
            reader = table
            blocks = try table.dataBlockHandles()
            blockIndex = 0
            windowCount = 0
        }
        guard let reader else { preconditionFailure("run scanner: blocks without a file") }
        let handle = blocks[blockIndex]
        blockIndex += 1
        let stored = try storedBytes(handle, of: reader)
        let bytes: UnsafeRawBufferPointer
        if stored[handle.size] == TableFormat.rawBlock {
            try TableFormat.checkBlock(stored, handle: handle, path: reader.path)
            bytes = UnsafeRawBufferPointer(rebasing: stored[0..<handle.size])
        } else {
            bytes = try TableFormat.decodeBlock(stored, handle: handle, path: reader.path, into: &decoded)
        }
        blockOffset = handle.offset
        guard bytes.count >= 4, let start = bytes.baseAddress else { throw corrupt("block of \(bytes.count) bytes is too short for its restart count") }
        let restarts = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)))
        guard restarts >= 1, restarts <= (bytes.count - 4) / 4 else {
            throw corrupt("block restart count \(restarts) does not fit its \(bytes.count) bytes")
        }
        base = start
        position = 0
        entriesEnd = bytes.count - 4 - 4 * restarts
        keyBuffer.truncate(to: 0)
        return true
    }

    /// A block's payload and trailer, from the window (refilled from the block on when the
    /// block is not wholly in it).
    private func storedBytes(_ handle: TableFormat.Handle, of table: TableReader) throws -> UnsafeRawBufferPointer {
        let needed = handle.size + TableFormat.trailerBytes
        if handle.offset < windowOffset || handle.offset + Int64(needed) > windowOffset + Int64(windowCount) {
            // A block larger than the window gets a window of its size, kept only while
            // blocks need it (one large value must not hold megabytes for the whole run).
            let size = max(needed, Self.windowBytes)
            if size != window.count {
                window.deallocate()
                window = .allocate(byteCount: size, alignment: 16)
            }
            let wanted = Int(min(Int64(window.count), max(Int64(needed), table.size - handle.offset)))
            let n = try table.readRaw(into: UnsafeMutableRawBufferPointer(rebasing: window[0..<wanted]), at: handle.offset)
            guard n >= needed else {
                throw KVError.corrupt(path: table.path, offset: handle.offset, reason: "file ends after \(n) of the block's \(needed) bytes")
            }
            windowOffset = handle.offset
            windowCount = n
        }
        let start = Int(handle.offset - windowOffset)
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(window)[start..<(start + needed)])
    }

    private func corrupt(_ reason: String) -> KVError {
        .corrupt(path: reader?.path ?? "?", offset: blockOffset, reason: reason)
    }
}
