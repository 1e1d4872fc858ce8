import EventLog
#if canImport(Glibc)
import Glibc
#endif

/// A file of checksummed sections that a query maps into memory and reads in place
/// (docs/PROJECTIONS.md, "Table files").
///
/// ```
/// offset size  field
/// 0      4     magic "BKTB"
/// 4      4     CRC32C of bytes 8..<header length (metadata and directory included)
/// 8      4     format version (1)
/// 12     4     header length h (a multiple of 8)
/// 16     4     section count s
/// 20     4     metadata length m
/// 24     m     metadata (the view's own: versions, positions, counts)
/// …            padding to a multiple of 8, then s directory entries of 24 bytes:
///              kind u32, CRC32C of the section u32, offset u64, length u64
/// h…           the sections, each at a multiple of 8
/// ```
/// All little-endian. A section's CRC is checked the first time it is used, so a query
/// pays (in time and resident memory) only for the sections it reads; the header's CRC
/// covers every section's CRC.
public enum TableFile {
    static let magic: UInt32 = 0x4254_4B42 // "BKTB"
    static let formatVersion: UInt32 = 1
    static let entryBytes = 24
    /// Bigger files are refused before they are mapped.
    static let maxFileBytes: Int64 = 64 << 30
}

/// Collects the sections of a table file and writes it.
public struct TableFileWriter: Sendable {
    private var sections: [(kind: UInt32, bytes: [UInt8])] = []
    private let metadata: [UInt8]

    /// A writer whose file will carry `metadata` in its header.
    public init(metadata: [UInt8]) { self.metadata = metadata }

    /// Adds a section (each kind at most once).
    public mutating func add(kind: UInt32, _ bytes: [UInt8]) {
        precondition(!sections.contains { $0.kind == kind }, "section \(kind) added twice")
        sections.append((kind, bytes))
    }

    /// Adds a section of fixed-width little-endian integers.
    public mutating func add<T: FixedWidthInteger>(kind: UInt32, integers: [T]) {
        #if _endian(little)
        // The file's byte order is the machine's: the array's bytes are the section.
        let bytes = integers.withUnsafeBytes { Array($0) }
        #else
        var bytes = [UInt8](repeating: 0, count: integers.count * MemoryLayout<T>.size)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in integers.enumerated() { raw.storeBytes(of: value.littleEndian, toByteOffset: i * MemoryLayout<T>.size, as: T.self) }
        }
        #endif
        add(kind: kind, bytes)
    }

    /// The whole file.
    public func encoded() -> [UInt8] {
        func aligned(_ n: Int) -> Int { (n + 7) & ~7 }
        let directoryStart = aligned(24 + metadata.count)
        let headerLength = directoryStart + sections.count * TableFile.entryBytes
        var out = [UInt8](repeating: 0, count: headerLength)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { out.replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: $0) }
        }
        put(TableFile.magic, at: 0)
        put(TableFile.formatVersion, at: 8)
        put(UInt32(headerLength), at: 12)
        put(UInt32(sections.count), at: 16)
        put(UInt32(metadata.count), at: 20)
        out.replaceSubrange(24..<(24 + metadata.count), with: metadata)
        var offset = headerLength
        for (i, section) in sections.enumerated() {
            let entry = directoryStart + i * TableFile.entryBytes
            put(section.kind, at: entry)
            put(CRC32C.checksum(section.bytes), at: entry + 4)
            put(UInt64(offset), at: entry + 8)
            put(UInt64(section.bytes.count), at: entry + 16)
            offset = aligned(offset + section.bytes.count)
        }
        put(CRC32C.checksum(out[8...]), at: 4)
        out.reserveCapacity(offset)
        for section in sections {
            out.append(contentsOf: section.bytes)
            out.append(contentsOf: repeatElement(0, count: aligned(out.count) - out.count))
        }
        return out
    }

    /// Writes the file at `path` and fdatasyncs it (the caller syncs the directory).
    public func write(to path: String, storage: any Storage) throws {
        let bytes = encoded()
        let file = try storage.open(path, create: true, writable: true)
        defer { file.close() }
        try file.truncate(to: 0)
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
    }
}

/// A table file mapped into memory, read-only. Not thread-safe: one query uses it.
public final class MappedTableFile {
    /// The file's path, for error messages.
    public let path: String
    /// The metadata the writer stored in the header.
    public let metadata: [UInt8]
    private let base: UnsafeRawPointer
    private let size: Int
    private var entries: [UInt32: (crc: UInt32, offset: Int, length: Int, verified: Bool)] = [:]

    /// Maps the file and checks its header; a damaged header is a `.badSnapshot` error.
    public init(path: String) throws {
        self.path = path
        func bad(_ reason: String) -> ProjectionError { .badSnapshot(path: path, reason: reason) }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw bad("cannot open: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw bad("cannot stat: \(String(cString: strerror(errno)))") }
        guard info.st_size >= 24, Int64(info.st_size) <= TableFile.maxFileBytes else { throw bad("size \(info.st_size) is out of range") }
        size = Int(info.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw bad("cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        let bytes = UnsafeRawBufferPointer(start: base, count: size)
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        let headerLength = Int(u32(12)), count = Int(u32(16)), metadataLength = Int(u32(20))
        let directoryStart = (24 + metadataLength + 7) & ~7
        var failure: String?
        if u32(0) != TableFile.magic {
            failure = "not a table file (bad magic)"
        } else if headerLength > size || directoryStart + count * TableFile.entryBytes != headerLength {
            failure = "header lengths out of range"
        } else if CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[8..<headerLength])) != u32(4) {
            failure = "header CRC32C mismatch"
        } else if u32(8) != TableFile.formatVersion {
            failure = "unknown table format version \(u32(8))"
        }
        if let failure {
            munmap(mapped, size)
            throw bad(failure)
        }
        var parsed: [UInt32: (crc: UInt32, offset: Int, length: Int, verified: Bool)] = [:]
        for i in 0..<count {
            let entry = directoryStart + i * TableFile.entryBytes
            let kind = u32(entry), offset = u64(entry + 8), length = u64(entry + 16)
            guard offset >= UInt64(headerLength), offset <= UInt64(size), length <= UInt64(size) - offset else {
                munmap(mapped, size)
                throw bad("section \(kind) lies outside the file")
            }
            parsed[kind] = (u32(entry + 4), Int(offset), Int(length), false)
        }
        entries = parsed
        // Last: once every property is set, a throw would run deinit (and unmap twice).
        metadata = Array(bytes[24..<(24 + metadataLength)])
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    /// A section's bytes, its CRC checked on first use (`verified: false` skips the check,
    /// for sections whose parts carry their own checksums). The bytes are valid while this
    /// file object lives: keep it (readers hold it; `IntegerColumn` does).
    public func section(_ kind: UInt32, verified: Bool = true) throws -> UnsafeRawBufferPointer {
        guard let entry = entries[kind] else { throw ProjectionError.badSnapshot(path: path, reason: "section \(kind) is missing") }
        let bytes = UnsafeRawBufferPointer(start: base + entry.offset, count: entry.length)
        if verified && !entry.verified {
            guard CRC32C.checksum(bytes) == entry.crc else {
                throw ProjectionError.badSnapshot(path: path, reason: "section \(kind) at byte \(entry.offset): CRC32C mismatch")
            }
            entries[kind]?.verified = true
        }
        return bytes
    }

    /// A section of fixed-width integers (written by `TableFileWriter.add(kind:integers:)`).
    public func integers<T: FixedWidthInteger>(_ kind: UInt32, as _: T.Type) throws -> IntegerColumn<T> {
        let bytes = try section(kind)
        guard bytes.count % MemoryLayout<T>.size == 0 else {
            throw ProjectionError.badSnapshot(path: path, reason: "section \(kind): length \(bytes.count) is not a multiple of \(MemoryLayout<T>.size)")
        }
        return IntegerColumn(bytes: bytes, owner: self)
    }
}

/// Fixed-width little-endian integers read in place from a mapped section.
///
/// Inlinable: queries in other modules scan millions of values, and an unspecialized
/// generic subscript costs tens of nanoseconds a call.
public struct IntegerColumn<T: FixedWidthInteger> {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    /// The mapping the bytes live in, kept mapped as long as the column exists.
    let owner: MappedTableFile

    init(bytes: UnsafeRawBufferPointer, owner: MappedTableFile) {
        self.bytes = bytes
        self.owner = owner
    }

    /// Number of values.
    @inlinable public var count: Int { bytes.count / MemoryLayout<T>.size }

    /// The value at `index` (which must be below `count`).
    @inlinable @inline(__always)
    public subscript(index: Int) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: index &* MemoryLayout<T>.size, as: T.self))
    }

    /// The first index in `range` whose value is not below `value`, for a column sorted ascending.
    @inlinable
    public func lowerBound(of value: T, in range: Range<Int>) -> Int {
        var low = range.lowerBound, high = range.upperBound
        while low < high {
            let mid = (low + high) / 2
            if self[mid] < value { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
