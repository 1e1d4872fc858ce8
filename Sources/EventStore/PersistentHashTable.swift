#if canImport(Glibc)
import Glibc
#endif
import EventLog
import Foundation

/// An open-addressing hash table in a memory-mapped file: the store's bounded-memory
/// index of event ids and of stream heads (docs/EVENTS.md, "Indexes").
///
/// The table is a cache of the log, never the truth: every entry can be rebuilt from the
/// log; which log offsets the tables cover is recorded beside them (`StoreIndex`). Slots
/// hold a 128-bit key and two 64-bit values; an empty slot has offset field 0, so stored
/// offsets are kept +1. The process's own memory stays constant whatever the table's
/// size: the pages belong to the OS page cache.
///
/// Not thread-safe: `StoreIndex` serializes access with its lock.
final class PersistentHashTable: @unchecked Sendable {
    static let magic: UInt32 = 0x5448_4B42 // "BKHT"
    static let headerBytes = 4096
    static let slotBytes = 32
    static let initialCapacity = 1 << 14

    struct Header: Equatable {
        var capacity: Int
        var count: Int
    }

    let path: String
    private var fd: Int32
    private var base: UnsafeMutableRawPointer
    private var mappedBytes: Int
    private(set) var header: Header
    /// The file was missing or unusable and was created empty: it covers nothing.
    let wasCreated: Bool

    /// Opens or creates the table file. Returns nil for `header` problems the caller
    /// resolves by rebuilding (a missing, torn or foreign file).
    init(path: String) throws {
        self.path = path
        unlink(path + ".grow") // a growth interrupted by a crash; the old file is intact
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventStoreError.io("open \(path)", errno) }
        var info = stat()
        fstat(fd, &info)
        var header = Header(capacity: Self.initialCapacity, count: 0)
        var fresh = true
        if Int(info.st_size) >= Self.headerBytes {
            var raw = [UInt8](repeating: 0, count: 64)
            let n = raw.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
            if n == 64, let parsed = Self.parseHeader(raw), Int(info.st_size) == Self.headerBytes + parsed.capacity * Self.slotBytes {
                header = parsed
                fresh = false
            }
        }
        let bytes = Self.headerBytes + header.capacity * Self.slotBytes
        if fresh {
            // A new table: an empty file of the initial size (zero slots are empty). Its
            // blocks are allocated now: a write through the mapping into a hole of a full
            // file system kills the process with SIGBUS instead of failing with ENOSPC.
            guard ftruncate(fd, 0) == 0 else {
                close(fd)
                throw EventStoreError.io("ftruncate \(path)", errno)
            }
            let code = posix_fallocate(fd, 0, off_t(bytes))
            guard code == 0 else {
                close(fd)
                throw EventStoreError.io("allocate \(bytes) bytes for \(path)", code)
            }
        }
        guard let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            close(fd)
            throw EventStoreError.io("mmap \(path)", errno)
        }
        self.fd = fd
        self.base = mapped
        self.mappedBytes = bytes
        self.header = header
        self.wasCreated = fresh
        if fresh { writeHeader() }
    }

    deinit {
        munmap(base, mappedBytes)
        close(fd)
    }

    // MARK: Lookup and update

    /// The values stored under a key.
    func lookup(_ k0: UInt64, _ k1: UInt64) -> (offset: Int64, value: Int64)? {
        let mask = header.capacity - 1
        var slot = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
        for _ in 0..<header.capacity {
            let p = base + Self.headerBytes + slot * Self.slotBytes
            let stored = p.load(fromByteOffset: 16, as: Int64.self)
            if stored == 0 { return nil }
            if p.load(as: UInt64.self) == k0 && p.load(fromByteOffset: 8, as: UInt64.self) == k1 {
                return (stored - 1, p.load(fromByteOffset: 24, as: Int64.self))
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Inserts or replaces the values of a key; with `onlyIfNewer`, a stored entry with
    /// a larger or equal `value` is kept (stream heads only move forward).
    func upsert(_ k0: UInt64, _ k1: UInt64, offset: Int64, value: Int64, onlyIfNewer: Bool) throws {
        precondition(offset >= 0, "offsets are never negative")
        if (header.count + 1) * 2 > header.capacity { try grow() }
        let mask = header.capacity - 1
        var slot = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
        for _ in 0..<header.capacity {
            let p = base + Self.headerBytes + slot * Self.slotBytes
            let stored = p.load(fromByteOffset: 16, as: Int64.self)
            if stored == 0 {
                p.storeBytes(of: k0, as: UInt64.self)
                p.storeBytes(of: k1, toByteOffset: 8, as: UInt64.self)
                p.storeBytes(of: value, toByteOffset: 24, as: Int64.self)
                p.storeBytes(of: offset + 1, toByteOffset: 16, as: Int64.self)
                header.count += 1
                return
            }
            if p.load(as: UInt64.self) == k0 && p.load(fromByteOffset: 8, as: UInt64.self) == k1 {
                if onlyIfNewer && p.load(fromByteOffset: 24, as: Int64.self) >= value { return }
                p.storeBytes(of: value, toByteOffset: 24, as: Int64.self)
                p.storeBytes(of: offset + 1, toByteOffset: 16, as: Int64.self)
                return
            }
            slot = (slot + 1) & mask
        }
        // Every slot taken (possible only with a stale count after a crash): grow and retry.
        header.count = header.capacity
        try upsert(k0, k1, offset: offset, value: value, onlyIfNewer: onlyIfNewer)
    }

    /// Empties the table (before a rebuild from the log).
    func reset() {
        memset(base + Self.headerBytes, 0, header.capacity * Self.slotBytes)
        header.count = 0
        writeHeader()
    }

    /// Counts the occupied slots (after a crash the header's count may be stale).
    func recount() {
        var count = 0
        for slot in 0..<header.capacity where (base + Self.headerBytes + slot * Self.slotBytes).load(fromByteOffset: 16, as: Int64.self) != 0 {
            count += 1
        }
        header.count = count
        writeHeader()
    }

    /// Writes the table's dirty pages (and its header) to disk.
    func sync() throws {
        writeHeader()
        guard msync(base, mappedBytes, MS_SYNC) == 0 else { throw EventStoreError.io("msync \(path)", errno) }
    }

    /// Doubles the capacity: rehash into a new file, sync it, rename it over this one.
    private func grow() throws {
        let capacity = header.capacity * 2
        let bytes = Self.headerBytes + capacity * Self.slotBytes
        let temporary = path + ".grow"
        let newFD = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard newFD >= 0 else { throw EventStoreError.io("open \(temporary)", errno) }
        // Allocated, not just sized: see init (SIGBUS on a full file system otherwise).
        let allocated = posix_fallocate(newFD, 0, off_t(bytes))
        guard allocated == 0 else {
            close(newFD)
            unlink(temporary)
            throw EventStoreError.io("grow \(path) to \(bytes) bytes", allocated)
        }
        guard let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, newFD, 0), mapped != MAP_FAILED else {
            let code = errno
            close(newFD)
            unlink(temporary)
            throw EventStoreError.io("grow \(path)", code)
        }
        let mask = capacity - 1
        var moved = 0
        for slot in 0..<header.capacity {
            let p = base + Self.headerBytes + slot * Self.slotBytes
            guard p.load(fromByteOffset: 16, as: Int64.self) != 0 else { continue }
            let k0 = p.load(as: UInt64.self), k1 = p.load(fromByteOffset: 8, as: UInt64.self)
            var target = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
            while mapped.load(fromByteOffset: Self.headerBytes + target * Self.slotBytes + 16, as: Int64.self) != 0 {
                target = (target + 1) & mask
            }
            (mapped + Self.headerBytes + target * Self.slotBytes).copyMemory(from: p, byteCount: Self.slotBytes)
            moved += 1
        }
        munmap(base, mappedBytes)
        close(fd)
        fd = newFD
        base = mapped
        mappedBytes = bytes
        header.capacity = capacity
        header.count = moved
        writeHeader()
        guard msync(base, mappedBytes, MS_SYNC) == 0, rename(temporary, path) == 0 else {
            throw EventStoreError.io("replace \(path)", errno)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    private func writeHeader() {
        var raw = [UInt8](repeating: 0, count: 64)
        raw.withUnsafeMutableBytes { p in
            guard let b = p.baseAddress else { return }
            b.storeBytes(of: Self.magic.littleEndian, as: UInt32.self)
            b.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: UInt64(header.capacity).littleEndian, toByteOffset: 8, as: UInt64.self)
            b.storeBytes(of: UInt64(header.count).littleEndian, toByteOffset: 16, as: UInt64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: b, count: 60))
            b.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
        }
        raw.withUnsafeBytes { bytes in
            if let source = bytes.baseAddress { base.copyMemory(from: source, byteCount: 64) }
        }
    }

    static func parseHeader(_ raw: [UInt8]) -> Header? {
        raw.withUnsafeBytes { p -> Header? in
            guard let b = p.baseAddress,
                  UInt32(littleEndian: b.load(as: UInt32.self)) == magic,
                  UInt32(littleEndian: b.load(fromByteOffset: 4, as: UInt32.self)) == 1,
                  CRC32C.checksum(UnsafeRawBufferPointer(start: b, count: 60)) == UInt32(littleEndian: b.load(fromByteOffset: 60, as: UInt32.self))
            else { return nil }
            guard let capacity = Int(exactly: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))),
                  let count = Int(exactly: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt64.self))),
                  capacity >= initialCapacity, capacity <= 1 << 34, capacity & (capacity - 1) == 0, count <= capacity else { return nil }
            return Header(capacity: capacity, count: count)
        }
    }

    /// The SplitMix64 finalizer: spreads any key over the slots.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
