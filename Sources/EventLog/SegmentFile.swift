/// Names of a partition's files (docs/FORMAT.md, "Directory layout").
///
/// A segment is named by its base offset, zero-padded to 20 digits so that names sort
/// as offsets do: `00000000000000001000.log`, with `.index` and `.timeindex` beside it.
enum SegmentFile {
    static let logExtension = ".log"
    static let indexExtension = ".index"
    static let timeIndexExtension = ".timeindex"
    /// The active segment's index so far, a hint written at each recovery point.
    static let activeIndexExtension = ".activeindex"

    static func name(baseOffset: Int64, extension ext: String) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ext
    }

    /// The base offset of a `.log` file name, or nil for other files.
    static func baseOffset(ofLogFile name: String) -> Int64? {
        guard name.hasSuffix(logExtension), name.count == 20 + logExtension.count else { return nil }
        return Int64(name.dropLast(logExtension.count))
    }
}

/// Reads a segment file batch by batch through a buffer, so that a sequential scan costs
/// one pread per megabyte, not one per batch.
struct SegmentScanner: Sendable {
    /// What the next position holds.
    enum Item: Sendable {
        /// A batch whose header parsed; its bytes are available through `withBatchBytes`.
        case batch(BatchHeader, position: Int64)
        /// The end of the data: end of file or the zero-filled free space.
        case end(position: Int64)
        /// Bytes that are neither a batch nor zeros.
        case invalid(position: Int64, reason: String)
    }

    let file: any StorageFile
    /// Bytes of the file that may hold data.
    let limit: Int64
    private(set) var position: Int64
    /// Allocated at the first read, no larger than what is left to read (a reader's open
    /// scans only the tail after its recovery point: zeroing 1 MiB per partition was most
    /// of a fresh query's time to open the log).
    private var buffer: [UInt8] = []
    private let bufferBytes: Int
    private var bufferStart: Int64 = 0
    private var bufferCount = 0
    private var current: BatchHeader?

    init(file: any StorageFile, from position: Int64, limit: Int64, bufferBytes: Int = 1 << 20) {
        self.file = file
        self.position = position
        self.limit = limit
        self.bufferBytes = bufferBytes
    }

    /// Parses the item at the current position and, for a batch, moves past it.
    mutating func next() throws -> Item {
        current = nil
        let available = Int(min(Int64(BatchHeader.size), limit - position))
        if available <= 0 { return .end(position: position) }
        if let cut = try fillUnlessCut(position, count: available) {
            return cut <= position ? .end(position: position)
                : .invalid(position: position, reason: "the file was cut at byte \(cut) while being read")
        }
        let parse = buffer.withUnsafeBytes { raw -> BatchHeader.Parse in
            guard let base = raw.baseAddress else { return .invalid("empty scan buffer") }
            return BatchHeader.parse(base + Int(position - bufferStart), available: available)
        }
        switch parse {
        case .zero:
            return .end(position: position)
        case let .invalid(reason):
            return .invalid(position: position, reason: reason)
        case let .header(header):
            guard position + Int64(header.batchLength) <= limit else {
                return .invalid(position: position, reason: "batch of \(header.batchLength) bytes runs past the end of the file (\(limit))")
            }
            if let cut = try fillUnlessCut(position, count: header.batchLength) {
                return .invalid(position: position, reason: "batch of \(header.batchLength) bytes runs past byte \(cut), where the file was cut while being read")
            }
            current = header
            let at = position
            position += Int64(header.batchLength)
            return .batch(header, position: at)
        }
    }

    /// Calls `body` with the bytes of the batch `next()` returned last.
    func withBatchBytes<R>(_ body: (UnsafeRawPointer) throws -> R) throws -> R {
        // Callers ask only after `next()` returned a batch: anything else is a bug here.
        guard let current else { preconditionFailure("a segment scanner's batch bytes asked for before a batch was read") }
        let start = Int(position - Int64(current.batchLength) - bufferStart)
        precondition(start >= 0 && start + current.batchLength <= buffer.count, "batch at \(start) of \(current.batchLength) bytes outside a scan buffer of \(buffer.count)")
        return try buffer.withUnsafeBytes { (raw) throws -> R in
            guard let base = raw.baseAddress else { preconditionFailure("a scan buffer without storage holds a batch") }
            return try body(base + start)
        }
    }

    /// Decodes (checksum, decompress, framing) the batch `next()` returned last.
    func decodeCurrent() throws -> RecordBatch {
        guard let current else { preconditionFailure("a segment scanner asked to decode before a batch was read") }
        let at = position - Int64(current.batchLength)
        return try withBatchBytes { (base) throws in try RecordBatch.decode(header: current, bytes: base, path: file.path, position: at) }
    }

    /// Whether the batch `next()` returned last has a matching CRC.
    func verifyCurrent() throws -> Bool {
        guard let current else { return false }
        return try withBatchBytes { current.verifyChecksum($0) }
    }

    /// Moves to `position` (a batch start known from an index).
    mutating func seek(to position: Int64) {
        self.position = position
        current = nil
    }

    /// Makes `[start, start + count)` readable from the buffer, reading from the file if needed.
    private mutating func fill(_ start: Int64, count: Int) throws {
        if start >= bufferStart && start + Int64(count) <= bufferStart + Int64(bufferCount) { return }
        let wanted = Int(max(Int64(count), min(Int64(bufferBytes), limit - start)))
        if buffer.count < wanted {
            // Uninitialized: only the bytes a read filled are ever looked at.
            buffer = [UInt8](unsafeUninitializedCapacity: wanted) { _, initialized in initialized = wanted }
        }
        let want = Int(min(Int64(buffer.count), limit - start))
        let got = try buffer.withUnsafeMutableBytes { (raw) throws -> Int in
            try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<want]), at: start)
        }
        bufferStart = start
        bufferCount = got
        guard got >= count else {
            throw LogError.corrupt(path: file.path, offset: start, reason: "file ends after \(got) of \(count) expected bytes")
        }
    }

    /// `fill`, except when the file became shorter than `limit` since this scanner was
    /// made and the bytes wanted run past its new end: then the new size. A writer that
    /// closes cuts its active segment's pre-zeroed space, so a reader beside it meets the
    /// cut as the end of the data, not as damage. (A file found short before the scan
    /// began is `limit`'s business: the scan never reads past it.)
    private mutating func fillUnlessCut(_ start: Int64, count: Int) throws -> Int64? {
        do {
            try fill(start, count: count)
            return nil
        } catch let error as LogError {
            guard case .corrupt = error, let now = try? file.size(), now < limit, now < start + Int64(count) else { throw error }
            return now
        }
    }
}
