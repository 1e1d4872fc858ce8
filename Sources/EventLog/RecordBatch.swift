/// Accumulates records for one append and encodes them as a batch (docs/FORMAT.md, "Records").
///
/// Each record is `varint length | varint zigzag(timestamp − firstTimestamp) | varint keyLength |
/// key | varint valueLength | value`. Offsets are not stored per record: they are the batch's
/// base offset plus the record's index, so they are dense by construction.
public struct RecordBatchBuilder: Sendable {
    private(set) var payload: [UInt8] = []
    /// Records added so far.
    public private(set) var count = 0
    private(set) var firstTimestamp: Int64 = 0
    private(set) var maxTimestamp: Int64 = .min
    private var scratch: [UInt8] = []

    /// An empty batch; `reservingCapacity` is a hint in bytes.
    public init(reservingCapacity bytes: Int = 0) {
        payload.reserveCapacity(bytes)
        scratch.reserveCapacity(32)
    }

    /// Uncompressed bytes of the records added so far.
    public var byteCount: Int { payload.count }

    /// Adds one record. `timestamp` is in microseconds since the Unix epoch.
    public mutating func append<Key: Collection<UInt8>, Value: Collection<UInt8>>(
        key: Key, value: Value, timestamp: Int64
    ) throws {
        try Array(key).withUnsafeBytes { k in
            try Array(value).withUnsafeBytes { v in try append(key: k, value: v, timestamp: timestamp) }
        }
    }

    /// Adds one record from byte arrays (the common case: no generic code across modules).
    public mutating func append(key: [UInt8], value: [UInt8], timestamp: Int64) throws {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in try append(key: k, value: v, timestamp: timestamp) }
        }
    }

    /// Adds one record from raw bytes.
    public mutating func append(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, timestamp: Int64) throws {
        let keyCount = key.count, valueCount = value.count
        guard keyCount <= Limits.maxKeyBytes else { throw LogError.invalidArgument("record key of \(keyCount) bytes exceeds the limit of \(Limits.maxKeyBytes)") }
        guard valueCount <= Limits.maxValueBytes else { throw LogError.invalidArgument("record value of \(valueCount) bytes exceeds the limit of \(Limits.maxValueBytes)") }
        guard count < Limits.maxRecordsPerBatch else { throw LogError.invalidArgument("a batch holds at most \(Limits.maxRecordsPerBatch) records") }
        let first = count == 0 ? timestamp : firstTimestamp
        scratch.removeAll(keepingCapacity: true)
        ByteCoding.appendVarint(ByteCoding.zigZag(timestamp &- first), to: &scratch)
        ByteCoding.appendVarint(UInt64(keyCount), to: &scratch)
        let bodyLength = scratch.count + keyCount + varintSize(UInt64(valueCount)) + valueCount
        // Check the limit before writing anything, so a rejected record leaves the batch as it was.
        guard payload.count + varintSize(UInt64(bodyLength)) + bodyLength <= Limits.maxUncompressedBatchBytes else {
            throw LogError.invalidArgument("batch would exceed \(Limits.maxUncompressedBatchBytes) uncompressed bytes")
        }
        firstTimestamp = first
        maxTimestamp = max(maxTimestamp, timestamp)
        ByteCoding.appendVarint(UInt64(bodyLength), to: &payload)
        payload.append(contentsOf: scratch)
        payload.append(contentsOf: key)
        ByteCoding.appendVarint(UInt64(valueCount), to: &payload)
        payload.append(contentsOf: value)
        count += 1
    }

    /// Removes all records, keeping the allocated capacity.
    public mutating func removeAll() {
        payload.removeAll(keepingCapacity: true)
        count = 0
        maxTimestamp = .min
    }

    /// The batch as queued for its partition's writer: its records, to be compressed before
    /// they are written (`EncodedBatch.compress`). When even the largest compressed form could
    /// break a limit (a batch near the size of a segment), it is compressed here instead, so
    /// that the limits are checked against its true size before it is queued.
    func encoded(codec: Codec, segmentBytes: Int) throws -> EncodedBatch {
        guard count > 0 else { throw LogError.invalidArgument("cannot append an empty batch") }
        var batch = EncodedBatch(payload: payload, codec: codec, recordCount: count, firstTimestamp: firstTimestamp, maxTimestamp: maxTimestamp)
        if batch.maxLength > min(segmentBytes, Limits.maxBatchBytes) { try batch.compress() }
        return batch
    }

    private func varintSize(_ value: UInt64) -> Int {
        var v = value, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }
}

/// A batch on its way to its partition's writer: its records, then — once `compress()` ran
/// (`QueuedBatch` says on which thread) — its header and compressed records, waiting for
/// the base offset and checksums the writer stamps.
struct EncodedBatch: Sendable {
    /// The records, uncompressed; after `compress()`, the header and compressed records.
    private(set) var bytes: [UInt8]
    private(set) var isCompressed = false
    let codec: Codec
    let recordCount: Int
    let firstTimestamp: Int64
    let maxTimestamp: Int64
    /// The most bytes the batch takes on disk, header included (its exact length once
    /// compressed).
    private(set) var maxLength: Int

    init(payload: [UInt8], codec: Codec, recordCount: Int, firstTimestamp: Int64, maxTimestamp: Int64) {
        precondition(recordCount > 0 && !payload.isEmpty, "a batch of \(recordCount) records in \(payload.count) bytes")
        bytes = payload
        self.codec = codec
        self.recordCount = recordCount
        self.firstTimestamp = firstTimestamp
        self.maxTimestamp = maxTimestamp
        maxLength = BatchHeader.size + codec.compressBound(payload.count)
    }

    /// Compresses the records behind a header whose base offset and CRC are placeholders
    /// until the partition writer stamps them in the order batches reach the disk.
    mutating func compress() throws {
        guard !isCompressed else { return }
        let payload = bytes
        var out = [UInt8](repeating: 0, count: maxLength)
        let compressed = try payload.withUnsafeBytes { (input) throws -> Int in
            try out.withUnsafeMutableBytes { (out) throws -> Int in
                try codec.compress(input, into: UnsafeMutableRawBufferPointer(rebasing: out[BatchHeader.size...]))
            }
        }
        let length = BatchHeader.size + compressed
        guard length <= Limits.maxBatchBytes else { throw LogError.invalidArgument("encoded batch of \(length) bytes exceeds \(Limits.maxBatchBytes)") }
        out.removeLast(out.count - length)
        let header = BatchHeader(
            batchLength: length, crc: 0, codec: codec, baseOffset: 0, recordCount: recordCount,
            uncompressedLength: payload.count, compressedLength: compressed,
            firstTimestamp: firstTimestamp, maxTimestamp: maxTimestamp)
        out.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { header.write(to: base) }
        }
        bytes = out
        isCompressed = true
        maxLength = length
    }
}

/// One record, valid only inside the closure that receives it: `key` and `value` point
/// into the batch's decompressed buffer, so iterating allocates nothing per record.
public struct RecordView {
    /// The record's offset in its partition.
    public let offset: Int64
    /// Microseconds since the Unix epoch.
    public let timestamp: Int64
    /// The record's key bytes.
    public let key: UnsafeRawBufferPointer
    /// The record's value bytes.
    public let value: UnsafeRawBufferPointer
}

/// A record that owns its bytes, for callers that keep records beyond a scan.
public struct Record: Sendable, Equatable {
    /// The record's offset in its partition.
    public var offset: Int64
    /// Microseconds since the Unix epoch.
    public var timestamp: Int64
    /// The record's key.
    public var key: [UInt8]
    /// The record's value.
    public var value: [UInt8]

    /// A record to append or one read back.
    public init(offset: Int64 = 0, timestamp: Int64, key: [UInt8], value: [UInt8]) {
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
    }
}

/// A batch read from a segment, checksum-verified and decompressed.
public struct RecordBatch: Sendable {
    /// The batch header as stored.
    public let header: BatchHeader
    /// Where the batch starts in its segment file.
    public let position: Int64
    /// Path of the segment file the batch was read from.
    public let segmentPath: String
    let records: [UInt8]

    /// Offset of the first record.
    public var baseOffset: Int64 { header.baseOffset }
    /// Offset after the last record.
    public var nextOffset: Int64 { header.nextOffset }

    /// Decodes a batch whose bytes are at `base`; verifies CRC and record framing.
    static func decode(header: BatchHeader, bytes base: UnsafeRawPointer, path: String, position: Int64) throws -> RecordBatch {
        guard header.verifyChecksum(base) else {
            throw LogError.corrupt(path: path, offset: position, reason: "batch CRC32C mismatch (base offset \(header.baseOffset))")
        }
        var records = [UInt8](repeating: 0, count: header.uncompressedLength)
        let ok = records.withUnsafeMutableBytes { out in
            header.codec.decompress(UnsafeRawBufferPointer(start: base + BatchHeader.size, count: header.compressedLength), into: out)
        }
        guard ok else { throw LogError.corrupt(path: path, offset: position, reason: "\(header.codec) payload does not decompress to \(header.uncompressedLength) bytes") }
        let batch = RecordBatch(header: header, position: position, segmentPath: path, records: records)
        try batch.validateFraming()
        return batch
    }

    /// Calls `body` for each record, in offset order, without allocating per record.
    public func forEach(_ body: (RecordView) throws -> Void) rethrows {
        try records.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var position = 0
            var offset = header.baseOffset
            while position < buffer.count, let record = record(base, at: &position, end: buffer.count, offset: offset) {
                try body(record)
                offset += 1
            }
        }
    }

    /// Where each record starts in the decompressed payload, for reading single records
    /// of one batch many times (`withRecord`) without walking the records before them.
    public func recordStarts() -> [Int32] {
        var starts: [Int32] = []
        starts.reserveCapacity(header.recordCount)
        records.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var position = 0
            while position < buffer.count {
                starts.append(Int32(position))
                guard record(base, at: &position, end: buffer.count, offset: 0) != nil else { return }
            }
        }
        return starts
    }

    /// Calls `body` with the record at `offset`, found with the batch's `recordStarts()`;
    /// nil when the batch does not hold `offset`.
    public func withRecord<R>(at offset: Int64, starts: [Int32], _ body: (RecordView) throws -> R) rethrows -> R? {
        guard offset >= header.baseOffset, offset < header.nextOffset else { return nil }
        let index = Int(offset - header.baseOffset)
        precondition(starts.count == header.recordCount, "\(starts.count) record starts for a batch of \(header.recordCount)")
        return try records.withUnsafeBytes { buffer -> R? in
            guard let base = buffer.baseAddress else { return nil }
            var position = Int(starts[index])
            guard let record = record(base, at: &position, end: buffer.count, offset: offset) else { return nil }
            return try body(record)
        }
    }

    /// The record at byte `position` (moved past it). Framing was validated when the batch
    /// was decoded, so the reads cannot fail; the guards keep that true even if it were not.
    private func record(_ base: UnsafeRawPointer, at position: inout Int, end: Int, offset: Int64) -> RecordView? {
        guard let length = ByteCoding.readVarint(base, &position, end: end) else { return nil }
        let recordEnd = position + Int(length)
        guard let delta = ByteCoding.readVarint(base, &position, end: recordEnd),
              let keyLength = ByteCoding.readVarint(base, &position, end: recordEnd) else { return nil }
        let key = UnsafeRawBufferPointer(start: base + position, count: Int(keyLength))
        position += Int(keyLength)
        guard let valueLength = ByteCoding.readVarint(base, &position, end: recordEnd) else { return nil }
        let value = UnsafeRawBufferPointer(start: base + position, count: Int(valueLength))
        position = recordEnd
        return RecordView(offset: offset, timestamp: header.firstTimestamp &+ ByteCoding.unZigZag(delta), key: key, value: value)
    }

    /// The records as owned values (allocates; for tests and small reads).
    public func recordList() -> [Record] {
        var list: [Record] = []
        list.reserveCapacity(header.recordCount)
        forEach { list.append(Record(offset: $0.offset, timestamp: $0.timestamp, key: Array($0.key), value: Array($0.value))) }
        return list
    }

    /// Checks that the records exactly fill the payload and match the header's count.
    private func validateFraming() throws {
        let problem: String? = records.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return header.recordCount == 0 ? nil : "empty payload" }
            var position = 0, count = 0
            let end = buffer.count
            while position < end {
                guard let length = ByteCoding.readVarint(base, &position, end: end),
                      length <= UInt64(end - position) else { return "record \(count) length runs past the batch" }
                let recordEnd = position + Int(length)
                guard ByteCoding.readVarint(base, &position, end: recordEnd) != nil,
                      let keyLength = ByteCoding.readVarint(base, &position, end: recordEnd),
                      keyLength <= UInt64(recordEnd - position) else { return "record \(count) key runs past the record" }
                position += Int(keyLength)
                guard let valueLength = ByteCoding.readVarint(base, &position, end: recordEnd),
                      valueLength == UInt64(recordEnd - position) else { return "record \(count) value does not fill the record" }
                position = recordEnd
                count += 1
            }
            return count == header.recordCount ? nil : "batch holds \(count) records, header says \(header.recordCount)"
        }
        if let problem { throw LogError.corrupt(path: segmentPath, offset: position, reason: problem) }
    }
}
