/// One segment as readers see it: only `size` bytes (the acknowledged ones) are read.
struct SegmentState: Sendable {
    let baseOffset: Int64
    let path: String
    /// Held open while the segment is active; through the log's open files once sealed.
    var access: SegmentFileAccess
    /// Bytes of acknowledged batches.
    var size: Int64
    /// Offset after the last acknowledged record.
    var nextOffset: Int64
    /// Loaded lazily for sealed segments; always present for the active one.
    var index: SegmentIndex?
    var sealed: Bool

    /// The segment's file (a sealed one's is opened if it is not open).
    func file() throws -> any StorageFile {
        switch access {
        case let .held(file): file
        case let .shared(files): try files.file(path)
        }
    }

    /// Marks the segment sealed: from now on its file is one of the log's shared open files,
    /// so that a process that runs for months does not hold one descriptor per segment.
    mutating func seal(sharing files: OpenSegmentFiles) {
        sealed = true
        access = .shared(files)
    }
}

/// Something the open of a partition found and repaired or reported.
public struct RecoveryEvent: Sendable, Equatable, CustomStringConvertible {
    /// The partition concerned.
    public let partition: Int
    /// The file concerned.
    public let path: String
    /// Byte offset in the file.
    public let offset: Int64
    /// Bytes cut from the end of the file (0 when nothing was cut).
    public let bytesDropped: Int64
    /// What was found.
    public let reason: String

    public var description: String {
        bytesDropped > 0
            ? "partition \(partition): torn tail in \(path) at byte offset \(offset): \(reason); \(bytesDropped) bytes dropped"
            : "partition \(partition): \(path) at byte offset \(offset): \(reason)"
    }
}

/// A partition's statistics.
public struct PartitionStatistics: Sendable, Equatable {
    /// The partition.
    public let partition: Int
    /// First offset held.
    public let startOffset: Int64
    /// Offset after the last acknowledged record.
    public let endOffset: Int64
    /// Segment files.
    public let segmentCount: Int
    /// Bytes of batches in the segments.
    public let bytes: Int64
}

/// One partition: a directory of segments, its readers' view and, when writable, its writer.
final class Partition: Sendable {
    struct Shared: Sendable {
        var segments: [SegmentState]
        var writer = WriterQueue()
    }

    let number: Int
    let directory: String
    let storage: any Storage
    let options: LogOptions
    let manifest: Manifest
    /// The log's open files of sealed segments (shared by its partitions).
    let segmentFiles: OpenSegmentFiles
    let shared: ConditionLock<Shared>
    /// What the open found (torn tails truncated, damaged indexes rebuilt).
    let recoveryEvents: [RecoveryEvent]
    private let writer: PartitionWriter?

    init(number: Int, directory: String, storage: any Storage, options: LogOptions, manifest: Manifest, segmentFiles: OpenSegmentFiles,
         segments: [SegmentState], recoveryEvents: [RecoveryEvent], writer: PartitionWriter?) {
        self.number = number
        self.directory = directory
        self.storage = storage
        self.options = options
        self.manifest = manifest
        self.segmentFiles = segmentFiles
        self.shared = ConditionLock(Shared(segments: segments))
        self.recoveryEvents = recoveryEvents
        self.writer = writer
    }

    /// Opened without a writer.
    var isReadOnly: Bool { writer == nil }

    /// Starts the writer's flusher thread (writable partitions only).
    func startWriter() throws {
        guard let writer else { return }
        try writer.start(partition: self)
    }

    var statistics: PartitionStatistics {
        shared.withLock { state in
            PartitionStatistics(
                partition: number,
                startOffset: state.segments.first?.baseOffset ?? 0,
                endOffset: state.segments.last?.nextOffset ?? 0,
                segmentCount: state.segments.count,
                bytes: state.segments.reduce(0) { $0 + $1.size })
        }
    }

    var endOffset: Int64 { shared.withLock { $0.segments.last?.nextOffset ?? 0 } }

    // MARK: Appending

    /// Waits while the writer is more than `maxPendingBytesPerPartition` behind (the
    /// queue is bounded; a failed or closing writer never makes anyone wait).
    func waitForQueueSpace() async {
        while true {
            let full: Bool = shared.withLock { $0.writer.pendingBytes >= Limits.maxPendingBytesPerPartition && $0.writer.failure == nil && !$0.writer.closing }
            if !full { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = shared.withLock { state -> Bool in
                    if state.writer.pendingBytes < Limits.maxPendingBytesPerPartition || state.writer.failure != nil || state.writer.closing { return true }
                    state.writer.spaceWaiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Queues an encoded batch for the writer and returns its ticket at once.
    func submit(_ batch: EncodedBatch, expectedBaseOffset: Int64?) throws -> AppendTicket {
        try queue(QueuedBatch(batch), expectedBaseOffset: expectedBaseOffset)
    }

    /// Queues a batch, compressed or not (`QueuedBatch`), and returns its ticket at once.
    func queue(_ batch: QueuedBatch, expectedBaseOffset: Int64?) throws -> AppendTicket {
        guard writer != nil else { throw LogError.invalidArgument("the log was opened read-only") }
        // A batch whose compressed size could exceed a segment was compressed already: its
        // length is exact here.
        guard batch.maxLength <= manifest.segmentBytes else {
            throw LogError.invalidArgument("a batch of \(batch.maxLength) bytes does not fit in a segment of \(manifest.segmentBytes) bytes")
        }
        let ticket = AppendTicket()
        let rejection: LogError? = shared.withLock { state in
            if let failure = state.writer.failure { return .writerFailed(partition: number, reason: failure.description) }
            if state.writer.closing || state.writer.stopped { return .closed }
            state.writer.pending.append(PendingAppend(batch: batch, ticket: ticket, expectedBaseOffset: expectedBaseOffset))
            state.writer.pendingBytes += batch.queuedBytes
            return nil
        }
        if let rejection { throw rejection }
        shared.broadcast()
        return ticket
    }

    /// Blocks until every record published so far is durable: in `none` and `interval`
    /// modes, the sync they otherwise wait for (in `fsync` mode there is nothing to do).
    /// No-op on a read-only partition; throws the writer's failure.
    func sync() throws { try requestSync()?.wait() }

    /// For a read-only instance: makes what it can read durable, whatever mode its writer
    /// (another process) appends in. An fdatasync of the active segment through this
    /// instance's own descriptor writes back the file's dirty pages whoever wrote them;
    /// the writer synced every sealed segment before sealing it, and the directory entry of
    /// each new segment when it created it.
    func syncWhatWasRead() throws {
        precondition(writer == nil, "partition \(number): the writable instance syncs through its writer")
        guard let active = shared.withLock({ $0.segments.last }) else { return }
        do { try active.file().sync() } catch { throw LogError.wrap(error) }
    }

    /// Asks the writer to sync what it has written; the request to wait for, or nil when
    /// there is nothing to wait for (read-only, or the writer stopped after its final sync).
    func requestSync() throws -> SyncRequest? {
        guard writer != nil else { return nil }
        let request = SyncRequest()
        let answered: Result<Void, LogError>? = shared.withLock { state in
            if let failure = state.writer.failure { return .failure(.writerFailed(partition: number, reason: failure.description)) }
            // A stopped writer's final sync covered everything (or it failed, above).
            if state.writer.stopped || !state.writer.running { return .success(()) }
            state.writer.syncRequests.append(request)
            return nil
        }
        if let answered {
            try answered.get()
            return nil
        }
        shared.broadcast()
        return request
    }

    /// Flushes, syncs, saves the recovery point, stops the writer and releases the lock.
    /// Returns the writer's failure, if it had one or the final sync failed: then what was
    /// appended without an fsync of its own (`none`, `interval` modes) may not be durable.
    func close() async -> LogError? {
        guard let writer else { return nil }
        let running = shared.withLock { $0.writer.running && !$0.writer.stopped }
        if !running {
            if !shared.withLock({ $0.writer.stopped }) { writer.abandon(self) }
            return shared.withLock { $0.writer.failure }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { state -> Bool in
                if state.writer.stopped { return true }
                state.writer.closing = true
                state.writer.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() } else { shared.broadcast() }
        }
        return shared.withLock { $0.writer.failure }
    }

    // MARK: Reading

    /// A cursor over batches from the one holding `offset`.
    func cursor(from offset: Int64) throws -> PartitionCursor {
        let (start, end) = shared.withLock { ($0.segments.first?.baseOffset ?? 0, $0.segments.last?.nextOffset ?? 0) }
        guard offset >= start && offset <= end else {
            throw LogError.offsetOutOfRange(partition: number, offset: offset, start: start, end: end)
        }
        return PartitionCursor(partition: self, offset: offset)
    }

    /// The segment holding `offset` (or the last one), with its index loaded.
    func segment(containing offset: Int64) throws -> (Int, SegmentState)? {
        let found: (Int, SegmentState)? = shared.withLock { state in
            guard !state.segments.isEmpty else { return nil }
            var i = state.segments.count - 1
            while i > 0 && state.segments[i].baseOffset > offset { i -= 1 }
            return (i, state.segments[i])
        }
        guard let (i, segment) = found else { return nil }
        return (i, try withIndex(i, segment))
    }

    /// The segment at position `i` in the list, with its index loaded, or nil past the end.
    func segment(at i: Int) throws -> SegmentState? {
        let segment: SegmentState? = shared.withLock { i < $0.segments.count ? $0.segments[i] : nil }
        guard let segment else { return nil }
        return try withIndex(i, segment)
    }

    /// Committed size and end offset of segment `i` now (they grow while it is active).
    func committedExtent(ofSegment i: Int) -> (size: Int64, nextOffset: Int64, sealed: Bool, count: Int) {
        shared.withLock { state in
            let segment = state.segments[i]
            return (segment.size, segment.nextOffset, segment.sealed, state.segments.count)
        }
    }

    /// Forgets a damaged index so that the next reader rebuilds it from the segment.
    func discardIndex(ofSegment i: Int) {
        shared.withLock { state in
            if state.segments[i].sealed { state.segments[i].index = nil }
        }
    }

    private func withIndex(_ i: Int, _ segment: SegmentState) throws -> SegmentState {
        if segment.index != nil { return segment }
        let index = try SegmentIndexLoader(storage: storage, writable: writer != nil, intervalBytes: options.indexIntervalBytes)
            .load(segment: segment)
        var loaded = segment
        loaded.index = index
        shared.withLock { state in
            if i < state.segments.count && state.segments[i].baseOffset == segment.baseOffset { state.segments[i].index = index }
        }
        return loaded
    }

    /// The earliest offset whose record timestamp is ≥ `timestamp`, or nil when every
    /// record is older.
    func offset(forTimestamp timestamp: Int64) throws -> Int64? {
        var i = 0
        while let segment = try segment(at: i) {
            i += 1
            guard let index = segment.index, index.maxTimestamp >= timestamp else { continue }
            let hinted = index.position(forTimestamp: timestamp)
            if hinted == 0 {
                if let found = try firstOffset(in: segment, from: 0, atOrAfter: timestamp) { return found }
                continue
            }
            // An index entry is a hint: if it does not lead to the answer, scan the segment.
            if let found = try? firstOffset(in: segment, from: hinted, atOrAfter: timestamp) { return found }
            if let found = try firstOffset(in: segment, from: 0, atOrAfter: timestamp) { return found }
        }
        return nil
    }

    /// The first record of `segment` at or after `position` whose timestamp is ≥ `timestamp`.
    private func firstOffset(in segment: SegmentState, from position: Int64, atOrAfter timestamp: Int64) throws -> Int64? {
        var scanner = SegmentScanner(file: try segment.file(), from: position, limit: segment.size)
        while true {
            switch try scanner.next() {
            case let .batch(header, _):
                guard header.maxTimestamp >= timestamp else { continue }
                var found: Int64?
                try scanner.decodeCurrent().forEach { record in
                    if found == nil && record.timestamp >= timestamp { found = record.offset }
                }
                if let found { return found }
            case .end:
                return nil
            case let .invalid(position, reason):
                throw LogError.corrupt(path: segment.path, offset: position, reason: reason)
            }
        }
    }
}

/// Loads a sealed segment's index files, or rebuilds them from the segment's headers.
struct SegmentIndexLoader {
    let storage: any Storage
    let writable: Bool
    let intervalBytes: Int

    func load(segment: SegmentState) throws -> SegmentIndex {
        let stem = String(segment.path.dropLast(SegmentFile.logExtension.count))
        if let offsets = try? storage.readWholeFile(stem + SegmentFile.indexExtension),
           let times = try? storage.readWholeFile(stem + SegmentFile.timeIndexExtension),
           let index = SegmentIndex.decodeFiles(offsets: offsets, times: times, segmentSize: segment.size, intervalBytes: intervalBytes) {
            return index
        }
        let index = try rebuild(segment: segment)
        if writable { try? write(index, stem: stem) }
        return index
    }

    /// Hops from header to header (no decompression) and indexes every batch.
    func rebuild(segment: SegmentState) throws -> SegmentIndex {
        var index = SegmentIndex(intervalBytes: intervalBytes)
        var scanner = SegmentScanner(file: try segment.file(), from: 0, limit: segment.size)
        var expected = segment.baseOffset
        while true {
            switch try scanner.next() {
            case let .batch(header, position):
                guard header.baseOffset == expected else {
                    throw LogError.corrupt(path: segment.path, offset: position, reason: "batch has base offset \(header.baseOffset), expected \(expected)")
                }
                index.add(batch: header, segmentBase: segment.baseOffset, position: position)
                expected = header.nextOffset
            case let .end(position):
                guard position == segment.size else {
                    throw LogError.corrupt(path: segment.path, offset: position, reason: "zero bytes inside a sealed segment of \(segment.size) bytes")
                }
                return index
            case let .invalid(position, reason):
                throw LogError.corrupt(path: segment.path, offset: position, reason: reason)
            }
        }
    }

    func write(_ index: SegmentIndex, stem: String) throws {
        let (offsets, times) = index.encodedFiles()
        for (bytes, ext) in [(offsets, SegmentFile.indexExtension), (times, SegmentFile.timeIndexExtension)] {
            let file = try storage.open(stem + ext, create: true, writable: true)
            defer { file.close() }
            try file.truncate(to: 0)
            try bytes.withUnsafeBytes { (raw) throws in try file.write(raw, at: 0) }
        }
    }
}
