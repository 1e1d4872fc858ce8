/// Reads a partition's batches in offset order, from the batch holding a start offset,
/// across segment boundaries, up to what has been acknowledged.
///
/// Every batch is checksummed and decompressed; its records are iterated without a
/// per-record allocation (`RecordBatch.forEach`). Batches that end before the start
/// offset are skipped without decompression. Reaching the end returns nil; calling
/// `next()` again later returns batches appended since.
public struct PartitionCursor: Sendable {
    let partition: Partition
    private var segmentNumber = -1
    private var segment: SegmentState?
    private var scanner: SegmentScanner?
    private var startOffset: Int64
    /// The base offset the next batch must have; nil right after an index seek.
    private var expectedOffset: Int64?
    /// Bytes the segment scanner reads ahead (small when only headers are wanted).
    var readAhead = 1 << 20

    init(partition: Partition, offset: Int64) {
        self.partition = partition
        self.startOffset = offset
    }

    /// The next batch, or nil at the end of the acknowledged data.
    public mutating func next() throws -> RecordBatch? {
        try step(decode: true)?.batch
    }

    /// The next batch's header only (checked like any header; the records are neither
    /// checksummed nor decompressed), or nil at the end.
    public mutating func nextHeader() throws -> BatchHeader? {
        try step(decode: false)?.header
    }

    private mutating func step(decode: Bool) throws -> (header: BatchHeader, batch: RecordBatch?)? {
        while true {
            if scanner == nil {
                guard try open() else { return nil }
            }
            guard var current = scanner, let segment else { return nil }
            let item = try current.next()
            scanner = current
            switch item {
            case let .batch(header, position):
                if let expectedOffset {
                    guard header.baseOffset == expectedOffset else {
                        throw LogError.corrupt(path: segment.path, offset: position, reason: "batch has base offset \(header.baseOffset), expected \(expectedOffset)")
                    }
                } else if header.baseOffset > startOffset || header.baseOffset < segment.baseOffset {
                    // The index pointed at a batch that cannot hold the start: rebuild it.
                    try reopenWithoutIndex()
                    continue
                }
                expectedOffset = header.nextOffset
                if header.nextOffset <= startOffset { continue }
                let batch = decode ? try current.decodeCurrent() : nil
                if !decode { scanner = current }
                startOffset = header.nextOffset
                return (header, batch)
            case .end:
                if current.position < current.limit {
                    throw LogError.corrupt(path: segment.path, offset: current.position, reason: "zero bytes where acknowledged data should be")
                }
                let extent = partition.committedExtent(ofSegment: segmentNumber)
                if extent.size > current.position {
                    // The active segment grew since this scanner was made.
                    scanner = SegmentScanner(file: try segment.file(), from: current.position, limit: extent.size, bufferBytes: readAhead)
                    continue
                }
                guard segmentNumber + 1 < extent.count else { return nil }
                segmentNumber += 1
                try openSegment(segmentNumber)
            case let .invalid(position, reason):
                if expectedOffset == nil { try reopenWithoutIndex(); continue }
                throw LogError.corrupt(path: segment.path, offset: position, reason: reason)
            }
        }
    }

    /// Positions on the segment holding the start offset; false when the partition is empty.
    private mutating func open() throws -> Bool {
        guard let (number, found) = try partition.segment(containing: startOffset) else { return false }
        segmentNumber = number
        let position = found.index?.position(forOffset: startOffset, segmentBase: found.baseOffset) ?? 0
        // From the segment start the first batch is known; after an index seek it is checked.
        expectedOffset = position == 0 ? found.baseOffset : nil
        segment = found
        scanner = SegmentScanner(file: try found.file(), from: position, limit: found.size, bufferBytes: readAhead)
        return true
    }

    private mutating func openSegment(_ number: Int) throws {
        guard let found = try partition.segment(at: number) else { scanner = nil; return }
        if let expectedOffset, expectedOffset != found.baseOffset {
            throw LogError.corrupt(path: found.path, offset: 0, reason: "segment starts at offset \(found.baseOffset), the previous one ends at \(expectedOffset)")
        }
        segment = found
        scanner = SegmentScanner(file: try found.file(), from: 0, limit: found.size, bufferBytes: readAhead)
        expectedOffset = found.baseOffset
    }

    /// Scans the segment from its start after an index entry proved wrong.
    /// Only called right after an index seek (`expectedOffset == nil`), so the scan from
    /// position 0 with a known first offset cannot loop back here.
    private mutating func reopenWithoutIndex() throws {
        guard let found = segment else { return }
        partition.discardIndex(ofSegment: segmentNumber)
        scanner = SegmentScanner(file: try found.file(), from: 0, limit: found.size)
        expectedOffset = found.baseOffset
    }
}
