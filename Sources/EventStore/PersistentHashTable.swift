#if canImport(Glibc)
import Glibc
#endif
import EventLog

/// An open-addressing hash table in a memory-mapped file: the store's bounded-memory
/// index of event ids and of stream heads (docs/EVENTS.md, "Indexes").
///
/// The table is a cache of the log, never the truth: every entry can be rebuilt from the
/// log, and its header records the log offset it covers (`coveredThrough`). Slots hold a
/// 128-bit key and two 64-bit values; the key (0, 0) with value 0 marks an empty slot, so
/// stored offsets are kept +1. The process's own memory stays constant whatever the
/// table's size: the pages belong to the OS page cache.
///
/// Not thread-safe: the owning store partition serializes access with its lock.
final class PersistentHashTable: @unchecked Sendable {
    static let magic: UInt32 = 0x5448_4B42 // "BKHT"
    static let headerBytes = 4096
    static let slotBytes = 32
    static let initialCapacity = 1 << 14

    struct Header: Equatable {
        var capacity: Int
        var count: Int
        /// Every log offset below this is in the table.
        var coveredThrough: Int64
        /// The table was closed cleanly (its pages and header are in step).
        var clean: Bool
        /// Every entry added since `coveredThrough` points at an event acknowledged in
        /// fsync mode, so it is on disk: a catch-up from `coveredThrough` repairs the table.
        var fsyncOnly = true
    }

    let path: String
    private var fd: Int32
    private var base: UnsafeMutableRawPointer
    private var mappedBytes: Int
    private(set) var header: Header
    private var dirty = false

    /// Opens or creates the table file. Returns nil for `header` problems the caller
    /// resolves by rebuilding (a missing, torn or foreign file).
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventStoreError.io("open \(path)", errno) }
        var info = stat()
        fstat(fd, &info)
        var header = Header(capacity: Self.initialCapacity, count: 0, coveredThrough: 0, clean: true)
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
            // A new table: an empty file of the initial size (zero slots are empty).
            guard ftruncate(fd, 0) == 0, ftruncate(fd, off_t(bytes)) == 0 else {
                close(fd)
                throw EventStoreError.io("ftruncate \(path)", errno)
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
        if fresh { header.clean = false; writeHeader() }
    }

    deinit {
        munmap(base, mappedBytes)
        close(fd)
    }

    /// Whether the table was newly created or found unusable (and so covers nothing).
    var isEmpty: Bool { header.count == 0 && header.coveredThrough == 0 }

    // MARK: Lookup and update

    /// The values stored under a key.
    func lookup(_ k0: UInt64, _ k1: UInt64) -> (offset: Int64, value: Int64)? {
        let mask = header.capacity - 1
        var slot = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
        while true {
            let p = base + Self.headerBytes + slot * Self.slotBytes
            let stored = p.load(fromByteOffset: 16, as: Int64.self)
            if stored == 0 { return nil }
            if p.load(as: UInt64.self) == k0 && p.load(fromByteOffset: 8, as: UInt64.self) == k1 {
                return (stored - 1, p.load(fromByteOffset: 24, as: Int64.self))
            }
            slot = (slot + 1) & mask
        }
    }

    /// Inserts or replaces the values of a key; with `onlyIfNewer`, a stored entry with
    /// a larger or equal `value` is kept (stream heads only move forward).
    func upsert(_ k0: UInt64, _ k1: UInt64, offset: Int64, value: Int64, onlyIfNewer: Bool) throws {
        precondition(offset >= 0, "offsets are never negative")
        if !dirty { markDirty() }
        if (header.count + 1) * 2 > header.capacity { try grow() }
        let mask = header.capacity - 1
        var slot = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
        while true {
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
    }

    /// Empties the table (before a rebuild from the log).
    func reset() throws {
        memset(base + Self.headerBytes, 0, header.capacity * Self.slotBytes)
        header.count = 0
        header.coveredThrough = 0
        markDirty()
    }

    // MARK: Durability of the cache

    /// Makes the slots durable, then records that they cover the log below `offset`.
    func checkpoint(coveredThrough offset: Int64, clean: Bool) throws {
        guard msync(base, mappedBytes, MS_SYNC) == 0 else { throw EventStoreError.io("msync \(path)", errno) }
        header.coveredThrough = offset
        header.clean = clean
        writeHeader()
        guard msync(base, Self.headerBytes, MS_SYNC) == 0 else { throw EventStoreError.io("msync \(path)", errno) }
        dirty = !clean
    }

    /// Before the first change after a clean state, the header says "not clean" on disk:
    /// so a header that says clean proves no slot changed since.
    private func markDirty() {
        dirty = true
        header.clean = false
        writeHeader()
        msync(base, Self.headerBytes, MS_SYNC)
    }

    /// Records whether entries added from now on are all fsync-acknowledged.
    func setFsyncOnly(_ value: Bool) {
        guard header.fsyncOnly != value else { return }
        if !value { header.fsyncOnly = false; markDirty() } else { header.fsyncOnly = true }
    }

    /// Doubles the capacity: rehash into a new file, sync it, rename it over this one.
    private func grow() throws {
        let capacity = header.capacity * 2
        let bytes = Self.headerBytes + capacity * Self.slotBytes
        let temporary = path + ".grow"
        let newFD = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard newFD >= 0 else { throw EventStoreError.io("open \(temporary)", errno) }
        guard ftruncate(newFD, off_t(bytes)) == 0,
              let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, newFD, 0), mapped != MAP_FAILED else {
            let code = errno
            close(newFD)
            throw EventStoreError.io("grow \(path)", code)
        }
        let mask = capacity - 1
        for slot in 0..<header.capacity {
            let p = base + Self.headerBytes + slot * Self.slotBytes
            guard p.load(fromByteOffset: 16, as: Int64.self) != 0 else { continue }
            let k0 = p.load(as: UInt64.self), k1 = p.load(fromByteOffset: 8, as: UInt64.self)
            var target = Int(truncatingIfNeeded: Self.mix(k0 ^ (k1 &* 0x9E37_79B9_7F4A_7C15))) & mask
            while mapped.load(fromByteOffset: Self.headerBytes + target * Self.slotBytes + 16, as: Int64.self) != 0 {
                target = (target + 1) & mask
            }
            (mapped + Self.headerBytes + target * Self.slotBytes).copyMemory(from: p, byteCount: Self.slotBytes)
        }
        munmap(base, mappedBytes)
        close(fd)
        fd = newFD
        base = mapped
        mappedBytes = bytes
        header.capacity = capacity
        writeHeader()
        guard msync(base, mappedBytes, MS_SYNC) == 0, rename(temporary, path) == 0 else {
            throw EventStoreError.io("replace \(path)", errno)
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
            b.storeBytes(of: header.coveredThrough.littleEndian, toByteOffset: 24, as: Int64.self)
            b.storeBytes(of: UInt32(header.clean ? 1 : 0).littleEndian, toByteOffset: 32, as: UInt32.self)
            b.storeBytes(of: UInt32(header.fsyncOnly ? 1 : 0).littleEndian, toByteOffset: 36, as: UInt32.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: b, count: 60))
            b.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
        }
        raw.withUnsafeBytes { bytes in
            if let source = bytes.baseAddress { base.copyMemory(from: source, byteCount: 64) }
        }
    }

    private static func parseHeader(_ raw: [UInt8]) -> Header? {
        raw.withUnsafeBytes { p -> Header? in
            guard let b = p.baseAddress,
                  UInt32(littleEndian: b.load(as: UInt32.self)) == magic,
                  UInt32(littleEndian: b.load(fromByteOffset: 4, as: UInt32.self)) == 1,
                  CRC32C.checksum(UnsafeRawBufferPointer(start: b, count: 60)) == UInt32(littleEndian: b.load(fromByteOffset: 60, as: UInt32.self))
            else { return nil }
            let capacity = Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            guard capacity >= initialCapacity, capacity <= 1 << 34, capacity & (capacity - 1) == 0 else { return nil }
            return Header(
                capacity: capacity,
                count: Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt64.self))),
                coveredThrough: Int64(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: Int64.self)),
                clean: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 32, as: UInt32.self)) == 1,
                fsyncOnly: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 36, as: UInt32.self)) == 1)
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
