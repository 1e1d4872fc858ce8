/// A partition's acknowledged end, file `acknowledged` (docs/FORMAT.md, "Acknowledged end"):
/// the offset below which every record has been acknowledged to its appender — in `fsync`
/// mode, below which every record is durable.
///
/// The writer rewrites it in place after each flush (after the fdatasync in `fsync` mode)
/// and before it acknowledges; a read-only instance in another process (a query, a
/// follower) reads no batch of the active segment at or beyond it. So a reader never shows
/// a record that the writer has written but not yet made durable — one that a power cut
/// could take back after a follower had passed it on. It is not synced: after a crash it may
/// be behind, never ahead of the durable data, and the next writable open rewrites it. So
/// it applies only while a writer holds the partition: without one nothing is being written,
/// and every complete batch is what the next writable open would keep.
enum AcknowledgedEnd {
    static let fileName = "acknowledged"
    static let magic: UInt32 = 0x4B41_4B42 // "BKAK"
    /// magic, version, next offset; then the CRC32C of those 16 bytes.
    static let size = 20

    /// What a reader found.
    enum Reading: Equatable {
        /// No file: a writer of an earlier version (or none yet); read to the data's end.
        case absent
        /// The end: read no record at or beyond it.
        case end(Int64)
        /// Bytes that do not decode (a write in progress, or damage): look again later.
        case unreadable
    }

    static func encode(_ nextOffset: Int64) -> [UInt8] {
        precondition(nextOffset >= 0, "AcknowledgedEnd: a negative offset")
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            ByteCoding.store(magic, to: base, at: 0)
            ByteCoding.store(UInt32(1), to: base, at: 4)
            ByteCoding.store(nextOffset, to: base, at: 8)
            ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: 16)), to: base, at: 16)
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> Int64? {
        guard bytes.count == size else { return nil }
        return bytes.withUnsafeBytes { raw -> Int64? in
            guard let base = raw.baseAddress,
                  ByteCoding.load(UInt32.self, from: base, at: 0) == magic,
                  ByteCoding.load(UInt32.self, from: base, at: 4) == 1,
                  CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: 16)) == ByteCoding.load(UInt32.self, from: base, at: 16)
            else { return nil }
            let end = ByteCoding.load(Int64.self, from: base, at: 8)
            return end >= 0 ? end : nil
        }
    }

    /// The end a read-only reader of the partition stops at: the file's, while a writer
    /// holds the partition (`.absent` when none does, or the file is absent).
    static func limit(directory: String, storage: any Storage) -> Reading {
        let reading = read(directory: directory, storage: storage)
        guard reading != .absent, writerHolds(directory: directory, storage: storage) else { return .absent }
        return reading
    }

    /// Whether a writer holds the partition's `LOCK` now (`Storage.isLockHeld`).
    static func writerHolds(directory: String, storage: any Storage) -> Bool {
        storage.isLockHeld(directory + "/LOCK")
    }

    /// The partition's acknowledged end as its file now says.
    static func read(directory: String, storage: any Storage) -> Reading {
        switch storage.readRewrittenFile(directory + "/" + fileName, decode: decode) {
        case .absent: .absent
        case let .value(end): .end(end)
        case .unreadable: .unreadable
        }
    }
}

extension Storage {
    /// `Storage.isLockHeld` through `lock`: a storage that can probe without taking write
    /// access (`PosixStorage`) does its own.
    public func isLockHeld(_ path: String) -> Bool {
        guard exists(path) else { return false }
        do {
            try lock(path).release()
            return false
        } catch {
            return true
        }
    }
}

/// A small file that a writer rewrites in place without syncing, as a reader found it.
package enum RewrittenFile<Value> {
    /// No such file.
    case absent
    /// What it says.
    case value(Value)
    /// Bytes that do not decode, twice: a write in progress, or damage.
    case unreadable
}

extension RewrittenFile: Equatable where Value: Equatable {}

extension Storage {
    /// Reads and decodes a small file a writer rewrites in place (`AcknowledgedEnd`, the
    /// store's recorded-order cut): read again when the first read does not decode, since it
    /// may have caught the writer mid-write. A read that fails counts as one that does not
    /// decode: the caller keeps its last value rather than reading without a limit.
    package func readRewrittenFile<Value>(_ path: String, decode: ([UInt8]) -> Value?) -> RewrittenFile<Value> {
        for _ in 0..<2 {
            let bytes: [UInt8]?
            do { bytes = try readWholeFile(path, limit: 1 << 20) } catch { continue }
            guard let bytes else { return .absent }
            if let value = decode(bytes) { return .value(value) }
        }
        return .unreadable
    }
}
