import EventLog

/// Builds one block of sorted entries (docs/KVSTORE.md, "Blocks"): keys share their prefix
/// with the previous key, except at restart points every `restartInterval` entries, which
/// a reader binary-searches. Written straight into a buffer of its own (a flush or a
/// compaction adds every entry of a table here: no array bounds or uniqueness checks per
/// byte). A class: it owns that buffer.
final class BlockBuilder {
    private let buffer = ByteBuffer(capacity: 8 << 10)
    private var restarts: [UInt32] = [0]
    private var sinceRestart = 0
    private let restartInterval: Int
    /// Entries added.
    private(set) var count = 0

    init(restartInterval: Int) {
        self.restartInterval = restartInterval
    }

    var isEmpty: Bool { count == 0 }

    /// Bytes the finished block will have.
    var estimatedBytes: Int { buffer.count + restarts.count * 4 + 4 }

    /// Adds an entry; keys must come in strictly increasing order. `sharedWithPrevious` is
    /// the length of the prefix the key shares with the key added before it (the caller
    /// knows it: it checks the order with it); a restart point and a block's first entry
    /// store the whole key.
    func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, deleted: Bool, sharedWithPrevious: Int) {
        precondition(sharedWithPrevious >= 0 && sharedWithPrevious <= key.count, "a shared prefix within the key")
        var shared = count == 0 ? 0 : sharedWithPrevious
        if sinceRestart == restartInterval {
            restarts.append(UInt32(buffer.count))
            sinceRestart = 0
            shared = 0
        }
        let unshared = key.count - shared
        // Three varints of at most 10 bytes each, then the key's rest and the value.
        let p = buffer.extend(by: 30 + unshared + value.count)
        var n = Self.storeVarint(UInt64(shared), at: p)
        n += Self.storeVarint(UInt64(unshared), at: p + n)
        n += Self.storeVarint(UInt64(value.count) << 1 | (deleted ? 1 : 0), at: p + n)
        if unshared > 0, let k = key.baseAddress { (p + n).copyMemory(from: k + shared, byteCount: unshared) }
        n += unshared
        if value.count > 0, let v = value.baseAddress { (p + n).copyMemory(from: v, byteCount: value.count) }
        n += value.count
        buffer.shrink(by: 30 + unshared + value.count - n)
        sinceRestart += 1
        count += 1
    }

    @inline(__always)
    private static func storeVarint(_ value: UInt64, at p: UnsafeMutableRawPointer) -> Int {
        if value < 0x80 {
            p.storeBytes(of: UInt8(value), as: UInt8.self)
            return 1
        }
        var v = value
        var n = 0
        while v >= 0x80 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: n, as: UInt8.self)
            v >>= 7
            n += 1
        }
        p.storeBytes(of: UInt8(v), toByteOffset: n, as: UInt8.self)
        return n + 1
    }

    /// Appends the restart array and calls `body` with the block's bytes (entries, restart
    /// offsets, restart count); then resets the builder.
    func finish<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        for r in restarts { withUnsafeBytes(of: r.littleEndian) { buffer.append($0) } }
        withUnsafeBytes(of: UInt32(restarts.count).littleEndian) { buffer.append($0) }
        defer {
            buffer.truncate(to: 0)
            restarts.removeAll(keepingCapacity: true)
            restarts.append(0)
            sinceRestart = 0
            count = 0
        }
        return try body(buffer.bytes)
    }
}

/// A decoded (decompressed, checksum-verified) block, immutable and shared by iterators
/// through the block cache.
final class Block: Sendable {
    // Sendable: the bytes are written once in init and never again.
    private nonisolated(unsafe) let storage: UnsafeMutableRawBufferPointer
    /// The entries' bytes end here (the restart array starts).
    let restartsOffset: Int
    let restartCount: Int
    /// Where the block lives, for error messages.
    let path: String
    let fileOffset: Int64

    /// Takes ownership of `storage` (allocated with `allocate(byteCount:alignment:)`). A block
    /// of entries is checked for a well-formed restart array; a raw block (a filter) is not.
    init(taking storage: UnsafeMutableRawBufferPointer, path: String, fileOffset: Int64, raw: Bool = false) throws {
        self.storage = storage
        self.path = path
        self.fileOffset = fileOffset
        let size = storage.count
        if raw {
            restartCount = 0
            restartsOffset = size
            return
        }
        guard size >= 4 else {
            storage.deallocate()
            throw KVError.corrupt(path: path, offset: fileOffset, reason: "block of \(size) bytes is too short for its restart count")
        }
        let count = Int(UInt32(littleEndian: storage.loadUnaligned(fromByteOffset: size - 4, as: UInt32.self)))
        guard count >= 1, count <= (size - 4) / 4 else {
            storage.deallocate()
            throw KVError.corrupt(path: path, offset: fileOffset, reason: "block restart count \(count) does not fit its \(size) bytes")
        }
        restartCount = count
        restartsOffset = size - 4 - 4 * count
    }

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }
    var memoryBytes: Int { storage.count + 96 }

    @inline(__always)
    func restart(_ i: Int) -> Int {
        Int(UInt32(littleEndian: storage.loadUnaligned(fromByteOffset: restartsOffset + 4 * i, as: UInt32.self)))
    }

    func corrupt(_ reason: String) -> KVError { .corrupt(path: path, offset: fileOffset, reason: reason) }
}

/// Walks a block's entries in either direction. Keys are rebuilt into a buffer of the
/// iterator's own; values point into the block. Both stay valid until the next move.
final class BlockIterator {
    let block: Block
    /// Offset of the current entry, and of the next one; `current == restartsOffset` when
    /// the iterator is past the end (or before the start).
    private var current: Int
    private var nextOffset: Int
    private let keyBuffer = ByteBuffer()
    private var valueStart = 0
    private var valueCount = 0
    private(set) var isDeletion = false
    private(set) var isValid = false

    init(_ block: Block) {
        self.block = block
        current = block.restartsOffset
        nextOffset = block.restartsOffset
    }

    var key: UnsafeRawBufferPointer { keyBuffer.bytes }
    var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: block.bytes[valueStart..<(valueStart + valueCount)]) }

    func seekToFirst() throws {
        try seekToRestart(0)
        try parseNext()
    }

    func seekToLast() throws {
        try seekToRestart(block.restartCount - 1)
        try parseNext()
        while isValid && nextOffset < block.restartsOffset { try parseNext() }
    }

    /// Moves to the first entry with a key ≥ `target`.
    func seek(_ target: UnsafeRawBufferPointer) throws {
        // Binary search the restart points for the last one whose key is < target.
        var low = 0, high = block.restartCount - 1
        while low < high {
            let mid = (low + high + 1) / 2
            let offset = block.restart(mid)
            let (shared, keyStart, keyCount) = try restartKey(at: offset)
            guard shared == 0 else { throw block.corrupt("restart point at \(offset) shares \(shared) key bytes") }
            let midKey = UnsafeRawBufferPointer(rebasing: block.bytes[keyStart..<(keyStart + keyCount)])
            if KeyOrder.compare(midKey, target) < 0 { low = mid } else { high = mid - 1 }
        }
        try seekToRestart(low)
        while true {
            try parseNext()
            if !isValid || KeyOrder.compare(key, target) >= 0 { return }
        }
    }

    func next() throws {
        precondition(isValid, "next() on an invalid block iterator")
        try parseNext()
    }

    func prev() throws {
        precondition(isValid, "prev() on an invalid block iterator")
        let original = current
        // The last restart point before the current entry, then forward to just before it.
        var r = block.restartCount - 1
        while r > 0 && block.restart(r) >= original { r -= 1 }
        if block.restart(r) >= original {
            // The current entry is the first: nothing before it.
            current = block.restartsOffset
            nextOffset = block.restartsOffset
            isValid = false
            return
        }
        try seekToRestart(r)
        repeat { try parseNext() } while isValid && nextOffset < original
    }

    private func seekToRestart(_ index: Int) throws {
        keyBuffer.truncate(to: 0)
        let offset = block.restart(index)
        guard offset <= block.restartsOffset else { throw block.corrupt("restart point \(index) at \(offset) is past the entries") }
        nextOffset = offset
        isValid = false
    }

    /// Decodes the entry at `nextOffset`.
    private func parseNext() throws {
        current = nextOffset
        guard current < block.restartsOffset else {
            isValid = false
            return
        }
        let bytes = block.bytes
        guard let base = bytes.baseAddress else { throw block.corrupt("empty block") }
        var p = current
        let end = block.restartsOffset
        guard let shared = ByteCoding.readVarint(base, &p, end: end), let unshared = ByteCoding.readVarint(base, &p, end: end),
              let valueField = ByteCoding.readVarint(base, &p, end: end) else {
            throw block.corrupt("entry at \(current) has a malformed header")
        }
        let valueLength = valueField >> 1
        guard shared <= UInt64(keyBuffer.count), unshared <= UInt64(end - p), valueLength <= UInt64(end - p) - unshared else {
            throw block.corrupt("entry at \(current) runs past its block (shared \(shared), key \(unshared), value \(valueLength) bytes)")
        }
        keyBuffer.truncate(to: Int(shared))
        keyBuffer.append(UnsafeRawBufferPointer(rebasing: bytes[p..<(p + Int(unshared))]))
        p += Int(unshared)
        valueStart = p
        valueCount = Int(valueLength)
        isDeletion = valueField & 1 != 0
        nextOffset = p + valueCount
        isValid = true
    }

    /// The key bytes of the entry at a restart point (whose shared count must be 0).
    private func restartKey(at offset: Int) throws -> (shared: UInt64, start: Int, count: Int) {
        guard let base = block.bytes.baseAddress, offset < block.restartsOffset else {
            throw block.corrupt("restart point at \(offset) is past the entries")
        }
        var p = offset
        let end = block.restartsOffset
        guard let shared = ByteCoding.readVarint(base, &p, end: end), let unshared = ByteCoding.readVarint(base, &p, end: end),
              ByteCoding.readVarint(base, &p, end: end) != nil, unshared <= UInt64(end - p) else {
            throw block.corrupt("entry at \(offset) has a malformed header")
        }
        return (shared, p, Int(unshared))
    }
}
