import EventLog

/// The store's recorded-order cut, file `recorded-order` in the store's directory
/// (docs/EVENTS.md, "Recorded-order cut"): per partition, the offset up to which reading the
/// partitions merged by recorded time is final — the ends of the writer's own
/// `recordedOrderReader` (`RecordedOrderEnds`), published for readers in other processes.
///
/// The writer rewrites it in place, never synced: at open (after recovery, before any append)
/// and after every settle that moves the ends. When written, each end is at or below its
/// partition's acknowledged end; so a reader that reads the cut *before* it refreshes its view
/// of the log finds every event below the cut there, and reads to the cut. It is honoured only
/// while a writer holds the store's `LOCK`: without one nothing is in flight, and a crashed
/// writer's file may name more than survived.
enum RecordedOrderCut {
    static let fileName = "recorded-order"
    static let magic: UInt32 = 0x4F52_4B42 // "BKRO"
    /// magic, version, partition count, zero.
    static let headerBytes = 16

    /// The file's size for `partitions` partitions: the header, an i64 end each, a CRC32C.
    static func size(partitions: Int) -> Int { headerBytes + 8 * partitions + 4 }

    static func encode(_ ends: [Int64]) -> [UInt8] {
        precondition(!ends.isEmpty && ends.allSatisfy { $0 >= 0 }, "RecordedOrderCut: ends \(ends)")
        var bytes = [UInt8](repeating: 0, count: size(partitions: ends.count))
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            ByteCoding.store(magic, to: base, at: 0)
            ByteCoding.store(UInt32(1), to: base, at: 4)
            ByteCoding.store(UInt32(ends.count), to: base, at: 8)
            for (p, end) in ends.enumerated() { ByteCoding.store(end, to: base, at: headerBytes + 8 * p) }
            let body = headerBytes + 8 * ends.count
            ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: body)), to: base, at: body)
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [Int64]? {
        guard bytes.count >= size(partitions: 1) else { return nil }
        return bytes.withUnsafeBytes { raw -> [Int64]? in
            guard let base = raw.baseAddress,
                  ByteCoding.load(UInt32.self, from: base, at: 0) == magic,
                  ByteCoding.load(UInt32.self, from: base, at: 4) == 1,
                  ByteCoding.load(UInt32.self, from: base, at: 12) == 0
            else { return nil }
            let partitions = Int(ByteCoding.load(UInt32.self, from: base, at: 8))
            guard partitions >= 1, bytes.count == size(partitions: partitions) else { return nil }
            let body = headerBytes + 8 * partitions
            guard CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: body)) == ByteCoding.load(UInt32.self, from: base, at: body) else { return nil }
            let ends = (0..<partitions).map { ByteCoding.load(Int64.self, from: base, at: headerBytes + 8 * $0) }
            return ends.allSatisfy { $0 >= 0 } ? ends : nil
        }
    }

    /// Whether a writer holds the store's `LOCK` now: only then is the cut honoured.
    static func writerHolds(directory: String, storage: any Storage) -> Bool {
        storage.isLockHeld(directory + "/LOCK")
    }

    /// The cut as the file now says.
    static func read(directory: String, storage: any Storage) -> RewrittenFile<[Int64]> {
        storage.readRewrittenFile(directory + "/" + fileName, decode: decode)
    }

    /// The writer's side: the open file, and the ends it last wrote.
    final class Publisher {
        private let file: any StorageFile
        private var published: [Int64]

        /// Creates (or cuts to size) the file and writes `ends`, the log's ends after recovery.
        init(directory: String, ends: [Int64], storage: any Storage) throws {
            file = try storage.open(directory + "/" + fileName, create: true, writable: true)
            published = ends
            do {
                try file.truncate(to: Int64(size(partitions: ends.count)))
                try write(ends)
            } catch {
                file.close()
                throw error
            }
        }

        /// Writes `ends` when they moved (they never go back: asserted).
        func publish(_ ends: [Int64]) throws {
            precondition(ends.count == published.count && zip(ends, published).allSatisfy { $0 >= $1 },
                         "recorded-order cut \(ends) behind the one published, \(published)")
            guard ends != published else { return }
            try write(ends)
            published = ends
        }

        private func write(_ ends: [Int64]) throws {
            try encode(ends).withUnsafeBytes { (raw) throws in try file.write(raw, at: 0) }
        }

        func close() { file.close() }
    }
}
