/// The sparse offset and time index of one segment (docs/FORMAT.md, "Indexes").
///
/// One entry every `indexIntervalBytes` of segment data, always at a batch start. Stored
/// as two files beside the segment — `.index` (relative offset, position) and `.timeindex`
/// (largest timestamp before the position, relative offset) — written when the segment is
/// sealed. Both are hints: they are validated on load, every entry is checked against the
/// batch header it points at, and a missing or damaged index is rebuilt from the segment.
struct SegmentIndex: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        /// Offset of the batch relative to the segment's base offset.
        var relativeOffset: UInt32
        /// Byte position of the batch in the segment.
        var position: UInt32
        /// Largest record timestamp in the segment before `position` (Int64.min for none).
        var maxTimestampBefore: Int64
    }

    private(set) var entries: [Entry] = []
    /// Largest timestamp of the whole indexed range.
    private(set) var maxTimestamp: Int64 = .min
    private var lastEntryPosition: Int64 = -1
    let intervalBytes: Int

    init(intervalBytes: Int) { self.intervalBytes = intervalBytes }

    /// Notes a batch at `position`; adds an entry when the interval has passed.
    mutating func add(batch header: BatchHeader, segmentBase: Int64, position: Int64) {
        if lastEntryPosition < 0 || position - lastEntryPosition >= Int64(intervalBytes) {
            entries.append(Entry(relativeOffset: UInt32(header.baseOffset - segmentBase), position: UInt32(position), maxTimestampBefore: maxTimestamp))
            lastEntryPosition = position
        }
        maxTimestamp = max(maxTimestamp, header.maxTimestamp)
    }

    /// Position of the last indexed batch whose offset is ≤ `offset` (0 when none).
    func position(forOffset offset: Int64, segmentBase: Int64) -> Int64 {
        let relative = offset - segmentBase
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if Int64(entries[mid].relativeOffset) <= relative { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? 0 : Int64(entries[low - 1].position)
    }

    /// Position of the last indexed batch before which every record is older than `timestamp`.
    func position(forTimestamp timestamp: Int64) -> Int64 {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].maxTimestampBefore < timestamp { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? 0 : Int64(entries[low - 1].position)
    }

    /// The entries up to and including the last one, with the maximum timestamp *before*
    /// it: what a scan resumes from when it restarts at that entry's batch (docs/FORMAT.md,
    /// "Active index").
    func resumingAtLastEntry() -> SegmentIndex? {
        guard let last = entries.last else { return nil }
        var index = SegmentIndex(intervalBytes: intervalBytes)
        index.entries = entries
        index.maxTimestamp = last.maxTimestampBefore
        index.lastEntryPosition = Int64(last.position)
        return index
    }

    /// The active-index file: entry count (u32), the `.index` and `.timeindex` bytes, and a
    /// CRC32C of all that (u32): a damaged hint is rejected whole, never half used.
    func encodedActive() -> [UInt8] {
        let (offsets, times) = encoded()
        var out = [UInt8](repeating: 0, count: 4)
        out.withUnsafeMutableBytes { raw in raw.storeBytes(of: UInt32(entries.count).littleEndian, as: UInt32.self) }
        out += offsets + times
        withUnsafeBytes(of: CRC32C.checksum(out).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Decodes an active-index file written for a segment now `segmentSize` bytes long.
    static func decodeActive(_ bytes: [UInt8], segmentSize: Int64, intervalBytes: Int) -> SegmentIndex? {
        guard bytes.count >= 8 else { return nil }
        let body = bytes[0..<(bytes.count - 4)]
        let crc = UInt32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self) })
        guard CRC32C.checksum(body) == crc else { return nil }
        let count = Int(UInt32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        let split = 4 + count * offsetEntryBytes
        guard split <= body.count else { return nil }
        return decode(offsets: Array(body[4..<split]), times: Array(body[split...]), segmentSize: segmentSize, intervalBytes: intervalBytes)
    }

    // MARK: Files

    static let offsetEntryBytes = 8
    static let timeEntryBytes = 12

    /// A sealed segment's `.index` and `.timeindex` files: the `.timeindex` ends with a
    /// CRC32C (u32) of both files' bytes before it, so that a flipped byte anywhere in
    /// either — a timestamp that would move an as-of answer, a position that would send a
    /// seek astray — makes the pair fail validation and be rebuilt from the segment.
    func encodedFiles() -> (offsets: [UInt8], times: [UInt8]) {
        var (offsets, times) = encoded()
        let crc = CRC32C.checksum(times, continuing: CRC32C.checksum(offsets))
        withUnsafeBytes(of: crc.littleEndian) { times.append(contentsOf: $0) }
        return (offsets, times)
    }

    /// Decodes what `encodedFiles` wrote; nil when the checksum or `decode`'s checks fail
    /// (files of builds before the checksum included).
    static func decodeFiles(offsets: [UInt8], times: [UInt8], segmentSize: Int64, intervalBytes: Int) -> SegmentIndex? {
        guard times.count >= 4 else { return nil }
        let body = Array(times[..<(times.count - 4)])
        let stored = UInt32(littleEndian: times.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: times.count - 4, as: UInt32.self) })
        guard CRC32C.checksum(body, continuing: CRC32C.checksum(offsets)) == stored else { return nil }
        return decode(offsets: offsets, times: body, segmentSize: segmentSize, intervalBytes: intervalBytes)
    }

    /// The two files' contents.
    func encoded() -> (offsets: [UInt8], times: [UInt8]) {
        var offsets = [UInt8](repeating: 0, count: entries.count * Self.offsetEntryBytes)
        var times = [UInt8](repeating: 0, count: (entries.count + 1) * Self.timeEntryBytes)
        offsets.withUnsafeMutableBytes { out in
            guard let base = out.baseAddress else { return }
            for (i, entry) in entries.enumerated() {
                ByteCoding.store(entry.relativeOffset, to: base, at: i * 8)
                ByteCoding.store(entry.position, to: base, at: i * 8 + 4)
            }
        }
        times.withUnsafeMutableBytes { out in
            guard let base = out.baseAddress else { return }
            for (i, entry) in entries.enumerated() {
                ByteCoding.store(entry.maxTimestampBefore, to: base, at: i * 12)
                ByteCoding.store(entry.relativeOffset, to: base, at: i * 12 + 8)
            }
            // A last entry records the segment's largest timestamp, relative offset 0xFFFFFFFF.
            ByteCoding.store(maxTimestamp, to: base, at: entries.count * 12)
            ByteCoding.store(UInt32.max, to: base, at: entries.count * 12 + 8)
        }
        return (offsets, times)
    }

    /// Rebuilds an index from its files; nil when they are inconsistent with each other
    /// or with the segment (size, ordering), in which case the caller rebuilds from data.
    static func decode(offsets: [UInt8], times: [UInt8], segmentSize: Int64, intervalBytes: Int) -> SegmentIndex? {
        guard offsets.count % offsetEntryBytes == 0, times.count % timeEntryBytes == 0,
              times.count / timeEntryBytes == offsets.count / offsetEntryBytes + 1 else { return nil }
        let count = offsets.count / offsetEntryBytes
        var index = SegmentIndex(intervalBytes: intervalBytes)
        var valid = true
        offsets.withUnsafeBytes { o in
            times.withUnsafeBytes { t in
                guard let ob = o.baseAddress, let tb = t.baseAddress else { valid = count == 0; return }
                var previous: Entry?
                for i in 0..<count {
                    let entry = Entry(
                        relativeOffset: ByteCoding.load(UInt32.self, from: ob, at: i * 8),
                        position: ByteCoding.load(UInt32.self, from: ob, at: i * 8 + 4),
                        maxTimestampBefore: ByteCoding.load(Int64.self, from: tb, at: i * 12))
                    let timeRelative = ByteCoding.load(UInt32.self, from: tb, at: i * 12 + 8)
                    if timeRelative != entry.relativeOffset || Int64(entry.position) >= segmentSize { valid = false; return }
                    if let previous, entry.relativeOffset <= previous.relativeOffset || entry.position <= previous.position
                        || entry.maxTimestampBefore < previous.maxTimestampBefore { valid = false; return }
                    if previous == nil && (entry.position != 0 || entry.relativeOffset != 0) { valid = false; return }
                    index.entries.append(entry)
                    previous = entry
                }
                index.maxTimestamp = ByteCoding.load(Int64.self, from: tb, at: count * 12)
                if ByteCoding.load(UInt32.self, from: tb, at: count * 12 + 8) != UInt32.max { valid = false }
                if let previous { index.lastEntryPosition = Int64(previous.position) }
            }
        }
        return valid ? index : nil
    }
}
