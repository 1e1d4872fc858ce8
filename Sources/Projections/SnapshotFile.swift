import CZstd
import EventLog
import EventStore
#if canImport(Glibc)
import Glibc
#endif

/// A view's snapshot file (docs/PROJECTIONS.md, "Snapshot file").
///
/// ```
/// offset size  field
/// 0      4     magic "BKSN"
/// 4      4     CRC32C of bytes 8..<end
/// 8      4     format version (1)
/// 12     4     view version
/// 16     4     schema version (the stored events' envelope version the view reads)
/// 20     4     partition count n
/// 24     8     events applied
/// 32     8     uncompressed state length
/// 40     8     compressed state length
/// 48     2     view name length k, then k bytes of UTF-8 name
/// …      1     log id length m (0 or 32), then m bytes: the log's id (manifest `log-id`)
/// …      8·n   positions (next offset per partition)
/// …      16·n  id of the last event applied per partition (zero: none)
/// …            state, zstd-compressed
/// ```
/// All little-endian. Written to a temporary file, fdatasynced, renamed, directory
/// fsynced; the newest few are kept. A file that fails any check is reported and skipped.
public enum SnapshotFile {
    static let magic: UInt32 = 0x4E53_4B42 // "BKSN"
    static let formatVersion: UInt32 = 1
    /// The stored-event envelope version views read.
    public static let schemaVersion: UInt32 = 1
    static let maxStateBytes = 4 << 30

    /// Encodes a snapshot of `projected`.
    static func encode<P: Projector>(_ projected: ProjectedView<P>, logID: String?) throws -> [UInt8] {
        let state = projected.view.encoded()
        let bound = ZSTD_compressBound(state.count)
        var compressed = [UInt8](repeating: 0, count: bound)
        let written = state.withUnsafeBytes { src in
            compressed.withUnsafeMutableBytes { dst in ZSTD_compress(dst.baseAddress, bound, src.baseAddress, state.count, 3) }
        }
        guard ZSTD_isError(written) == 0 else { throw ProjectionError.io("zstd could not compress the state of \(P.name)") }
        compressed.removeLast(bound - written)
        var out: [UInt8] = []
        out.reserveCapacity(64 + projected.positions.count * 8 + written)
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        put(magic); put(UInt32(0)); put(formatVersion); put(UInt32(P.version)); put(schemaVersion)
        put(UInt32(projected.positions.count)); put(UInt64(projected.eventsApplied))
        put(UInt64(state.count)); put(UInt64(written))
        let name = Array(P.name.utf8)
        put(UInt16(name.count)); out.append(contentsOf: name)
        let id = Array((logID ?? "").utf8)
        put(UInt8(id.count)); out.append(contentsOf: id)
        for position in projected.positions { put(position) }
        for last in projected.lastEventIDs { put(last?.high ?? 0); put(last?.low ?? 0) }
        out.append(contentsOf: compressed)
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
        withUnsafeBytes(of: crc.littleEndian) { out.replaceSubrange(4..<8, with: $0) }
        return out
    }

    /// What a snapshot's header says, read without checking or decoding the state: for
    /// deciding cheaply whether a new snapshot is due. Nil when the header does not parse.
    public struct Peek: Sendable, Equatable {
        /// Events the view had applied.
        public let eventsApplied: Int64
        /// Next offset per partition.
        public let positions: [Int64]
        /// The log it was made from.
        public let logID: String
    }

    /// Reads the header of the snapshot at `path` (see `Peek`).
    public static func peek(_ path: String, storage: any Storage) -> Peek? {
        guard let file = try? storage.open(path, create: false, writable: false) else { return nil }
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        guard let n = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) else { return nil }
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard at + MemoryLayout<T>.size <= n else { return nil }
            var value: T = 0
            for i in 0..<MemoryLayout<T>.size { value |= T(bytes[at + i]) << (8 * i) }
            at += MemoryLayout<T>.size
            return value
        }
        guard get(UInt32.self) == magic, get(UInt32.self) != nil, get(UInt32.self) == formatVersion,
              get(UInt32.self) != nil, get(UInt32.self) != nil, let count = get(UInt32.self), count <= 4_096,
              let applied = get(UInt64.self), get(UInt64.self) != nil, get(UInt64.self) != nil,
              let nameLength = get(UInt16.self) else { return nil }
        at += Int(nameLength)
        guard let idLength = get(UInt8.self), at + Int(idLength) <= n else { return nil }
        let logID = String(decoding: bytes[at..<(at + Int(idLength))], as: UTF8.self)
        at += Int(idLength)
        var positions: [Int64] = []
        for _ in 0..<count {
            guard let p = get(UInt64.self) else { return nil }
            positions.append(Int64(bitPattern: p))
        }
        return Peek(eventsApplied: Int64(bitPattern: applied), positions: positions, logID: logID)
    }

    /// Decodes a snapshot, checking everything; the error says what is wrong.
    static func decode<P: Projector>(_ bytes: [UInt8], as type: P.Type, partitions: Int, logID: String?, path: String) throws -> ProjectedView<P> {
        func bad(_ reason: String) -> ProjectionError { .badSnapshot(path: path, reason: reason) }
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard at + MemoryLayout<T>.size <= bytes.count else { throw bad("truncated at byte \(at)") }
            var value: T = 0
            for i in 0..<MemoryLayout<T>.size { value |= T(bytes[at + i]) << (8 * i) }
            at += MemoryLayout<T>.size
            return value
        }
        guard try get(UInt32.self) == magic else { throw bad("not a snapshot file (bad magic)") }
        let crc = try get(UInt32.self)
        guard bytes.withUnsafeBytes({ CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }) == crc else { throw bad("CRC32C mismatch") }
        guard try get(UInt32.self) == formatVersion else { throw bad("unknown snapshot format version") }
        let viewVersion = try get(UInt32.self)
        guard viewVersion == UInt32(P.version) else { throw bad("written by view version \(viewVersion), this build's \(P.name) view is version \(P.version)") }
        guard try get(UInt32.self) == schemaVersion else { throw bad("written for another event schema version") }
        let count = Int(try get(UInt32.self))
        guard count == partitions else { throw bad("has \(count) partitions, the log has \(partitions)") }
        let applied = Int64(bitPattern: try get(UInt64.self))
        let rawLength = try get(UInt64.self), compressedLength = try get(UInt64.self)
        let nameLength = Int(try get(UInt16.self))
        guard at + nameLength <= bytes.count, String(decoding: bytes[at..<(at + nameLength)], as: UTF8.self) == P.name else { throw bad("belongs to another view") }
        at += nameLength
        let idLength = Int(try get(UInt8.self))
        guard at + idLength <= bytes.count else { throw bad("truncated log id") }
        let storedID = String(decoding: bytes[at..<(at + idLength)], as: UTF8.self)
        at += idLength
        guard storedID == (logID ?? "") else { throw bad("made from another log (log id \(storedID.isEmpty ? "none" : storedID), this log is \(logID ?? "none"))") }
        var positions: [Int64] = []
        for _ in 0..<count { positions.append(Int64(bitPattern: try get(UInt64.self))) }
        var lastIDs: [EventID?] = []
        for _ in 0..<count {
            let high = try get(UInt64.self), low = try get(UInt64.self)
            lastIDs.append(high == 0 && low == 0 ? nil : EventID(high: high, low: low))
        }
        guard positions.allSatisfy({ $0 >= 0 }), rawLength <= UInt64(maxStateBytes), compressedLength == UInt64(bytes.count - at),
              rawLength <= compressedLength &* 64 &+ 1_024 else {
            throw bad("lengths or positions out of range")
        }
        var state = [UInt8](repeating: 0, count: Int(rawLength))
        let n = bytes.withUnsafeBytes { src in
            state.withUnsafeMutableBytes { dst in ZSTD_decompress(dst.baseAddress, dst.count, src.baseAddress.map { $0 + at }, Int(compressedLength)) }
        }
        guard ZSTD_isError(n) == 0, n == Int(rawLength) else { throw bad("state does not decompress") }
        do {
            return ProjectedView(view: try P(decoding: state), positions: positions, eventsApplied: applied, lastEventIDs: lastIDs)
        } catch {
            throw bad("state does not decode: \(error)")
        }
    }
}

/// A view's snapshot directory: `views/<name>/` holding `<20-digit sequence>.snapshot`.
public struct SnapshotDirectory: Sendable {
    /// The directory.
    public let path: String
    /// How many snapshots to keep.
    public var keep = 3
    let storage: any Storage

    /// The snapshots of view `name` under `root`.
    public init(root: String, name: String, storage: any Storage = PosixStorage()) {
        self.path = root + "/" + name
        self.storage = storage
    }

    /// Snapshot file names, newest first.
    public func list() -> [String] {
        ((try? storage.listDirectory(path)) ?? []).filter { $0.hasSuffix(".snapshot") && $0.count == 29 }.sorted(by: >)
    }

    /// Writes a new snapshot atomically and durably, then removes all but the newest `keep`.
    /// A failure leaves the earlier snapshots as they were.
    ///
    /// Nothing is written when the newest snapshot is already at or past these positions,
    /// unless `replace`. `tables`, when given, fills a directory with files derived from the same state (a
    /// view's query tables); it is made durable and renamed to `<sequence>.tables` before
    /// the snapshot itself is renamed into place, so a snapshot's tables exist whenever
    /// the snapshot does.
    @discardableResult
    public func write<P: Projector>(_ projected: ProjectedView<P>, logID: String?, replace: Bool = false,
                                    tables: ((_ directory: String) throws -> Void)? = nil) throws -> String {
        try storage.createDirectory(path)
        // One writer at a time (an append and a query may both decide to snapshot): the lock
        // is held from choosing the sequence number to the last rename and the pruning.
        let lock: any StorageLock
        do { lock = try storage.lock(path + "/" + Self.lockName) } catch LogError.locked {
            throw ProjectionError.io("another process is writing a snapshot of view \(P.name) now")
        }
        defer { lock.release() }
        // A snapshot at least as far along as this one makes it redundant (unless asked to
        // replace it: a rebuild, an explicit snapshot, damaged tables).
        if !replace, let newest = list().first, let peek = SnapshotFile.peek(path + "/" + newest, storage: storage),
           peek.logID == (logID ?? ""), peek.positions.count == projected.positions.count,
           zip(peek.positions, projected.positions).allSatisfy({ $0 >= $1 }), storage.exists(tablesDirectory(of: newest)) || tables == nil {
            return path + "/" + newest
        }
        let bytes = try SnapshotFile.encode(projected, logID: logID)
        // After the newest snapshot and any table directory a crashed writer left behind.
        let sequences = ((try? storage.listDirectory(path)) ?? []).compactMap { name -> Int64? in
            (name.hasSuffix(".snapshot") && name.count == 29) || (name.hasSuffix(Self.tablesSuffix) && name.count == 20 + Self.tablesSuffix.count)
                ? Int64(name.prefix(20)) : nil
        }
        let sequence = (sequences.max() ?? 0) + 1
        let digits = String(sequence)
        let stem = String(repeating: "0", count: 20 - digits.count) + digits
        // Temporary names of this process's own: concurrent writers never share one.
        let unique = ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        if let tables {
            let temporary = path + "/" + stem + Self.tablesSuffix + unique
            do {
                try storage.createDirectory(temporary)
                try tables(temporary)
                try storage.syncDirectory(temporary)
                try storage.rename(temporary, to: path + "/" + stem + Self.tablesSuffix)
            } catch {
                removeTree(temporary)
                throw error
            }
        }
        let temporary = path + "/" + stem + ".snapshot" + unique
        let file = try storage.open(temporary, create: true, writable: true)
        do {
            try file.truncate(to: 0)
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            try file.sync()
            file.close()
            try storage.rename(temporary, to: path + "/" + stem + ".snapshot")
            try storage.syncDirectory(path)
        } catch {
            file.close()
            try? storage.remove(temporary)
            throw error
        }
        prune()
        return path + "/" + stem + ".snapshot"
    }

    /// The lock file writers hold.
    static let lockName = "LOCK"

    /// The name suffix of a snapshot's table directory.
    public static let tablesSuffix = ".tables"

    /// The table directory of a snapshot file name (`<sequence>.snapshot`).
    public func tablesDirectory(of snapshot: String) -> String {
        path + "/" + snapshot.prefix(20) + Self.tablesSuffix
    }

    /// Removes snapshots beyond the newest `keep`, table directories whose snapshot is gone
    /// or was never written, and temporary files and directories of writers that died
    /// (called with the lock held: no other writer is at work).
    private func prune() {
        let kept = Set(list().prefix(keep).map { $0.prefix(20) })
        for old in list().dropFirst(keep) { try? storage.remove(path + "/" + old) }
        for name in (try? storage.listDirectory(path)) ?? [] {
            if name.hasSuffix(".tmp") {
                if name.contains(Self.tablesSuffix + ".") { removeTree(path + "/" + name) } else { try? storage.remove(path + "/" + name) }
            } else if name.count == 20 + Self.tablesSuffix.count && name.hasSuffix(Self.tablesSuffix) && !kept.contains(name.prefix(20)) {
                removeTree(path + "/" + name)
            }
        }
    }

    /// Removes a directory of files (table directories hold no subdirectories).
    private func removeTree(_ directory: String) {
        for name in (try? storage.listDirectory(directory)) ?? [] { try? storage.remove(directory + "/" + name) }
        rmdir(directory)
    }

    /// The newest snapshot that passes every check, and the ones skipped with why.
    public func loadNewest<P: Projector>(_ type: P.Type, partitions: Int, logID: String?) -> (ProjectedView<P>?, path: String?, skipped: [ProjectionError]) {
        var skipped: [ProjectionError] = []
        for name in list() {
            let file = path + "/" + name
            do {
                guard let handle = try? storage.open(file, create: false, writable: false) else { continue }
                defer { handle.close() }
                let size = try handle.size()
                var bytes = [UInt8](repeating: 0, count: Int(size))
                let n = try bytes.withUnsafeMutableBytes { try handle.read(into: $0, at: 0) }
                guard n == bytes.count else { throw ProjectionError.badSnapshot(path: file, reason: "short read") }
                return (try SnapshotFile.decode(bytes, as: type, partitions: partitions, logID: logID, path: file), file, skipped)
            } catch let error as ProjectionError {
                skipped.append(error)
            } catch {
                skipped.append(.badSnapshot(path: file, reason: "\(error)"))
            }
        }
        return (nil, nil, skipped)
    }
}
