#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append waiting for the writer.
struct PendingAppend: Sendable {
    let batch: QueuedBatch
    let ticket: AppendTicket
    /// When set, the batch must get exactly this base offset (callers that predict
    /// offsets, like the event store's stream back-pointers, rely on it).
    let expectedBaseOffset: Int64?
}

/// A caller waiting until what the writer has written is durable (`Partition.sync`).
final class SyncRequest: Sendable {
    private let result = ConditionLock<Result<Void, LogError>?>(nil)

    func complete(_ outcome: Result<Void, LogError>) {
        result.withLock { if $0 == nil { $0 = outcome } }
        result.broadcast()
    }

    /// Blocks the calling thread until the writer has answered.
    func wait() throws {
        try result.wait(until: { $0 != nil }, timeoutNanoseconds: nil) { try $0!.get() }
    }
}

/// The appenders' side of the writer, kept under the partition's lock.
struct WriterQueue: Sendable {
    var pending: [PendingAppend] = []
    var syncRequests: [SyncRequest] = []
    var pendingBytes = 0
    var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var failure: LogError?
    var closing = false
    var stopped = false
    /// Whether the flusher thread runs; a partition whose open failed part way never starts one.
    var running = false
}

/// The single writer of a partition: a dedicated thread that takes every waiting batch,
/// stamps offsets in order, writes them with one pwrite and makes them durable with one
/// fdatasync (group commit), then acknowledges them all.
///
/// Compression happens in the appenders' tasks, before a batch is queued or beside it
/// (`QueuedBatch`, which this thread compresses itself when no appender has started to),
/// so while this thread waits for the disk the other core compresses the next batches: a
/// two-stage pipeline. Everything here runs on that one thread; only `WriterQueue` and the
/// published `SegmentState`s are shared, under the partition's lock.
final class PartitionWriter: @unchecked Sendable {
    private let storage: any Storage
    private let directory: String
    private let options: LogOptions
    private let segmentBytes: Int64
    private let lock: any StorageLock

    // The active segment, as the writer knows it (ahead of what readers see until published).
    private var file: any StorageFile
    private var segmentBase: Int64
    private var position: Int64
    private var zeroedEnd: Int64
    private var nextOffset: Int64
    private var maxTimestamp: Int64
    private var checkpointPosition: Int64
    /// The chain hash of the partition's last stamped batch: the next one links to it.
    private var chainHead: ChainHash
    private var unsyncedBytes = 0
    private var lastSync = MonotonicClock.nanoseconds
    private var buffer: [UInt8] = []
    private static let zeros = [UInt8](repeating: 0, count: 1 << 20)
    /// The partition's `acknowledged` file, rewritten in place before each acknowledgement.
    private let acknowledgedFile: any StorageFile

    init(storage: any Storage, directory: String, options: LogOptions, segmentBytes: Int, lock: any StorageLock,
         active: SegmentState, maxTimestamp: Int64, checkpointPosition: Int64, chainHead: ChainHash) throws {
        self.storage = storage
        self.directory = directory
        self.options = options
        self.segmentBytes = Int64(segmentBytes)
        self.lock = lock
        guard case let .held(file) = active.access else { preconditionFailure("the writer's segment is held open, never shared") }
        self.file = file
        self.segmentBase = active.baseOffset
        self.position = active.size
        self.nextOffset = active.nextOffset
        self.maxTimestamp = maxTimestamp
        self.checkpointPosition = checkpointPosition
        self.chainHead = chainHead
        self.zeroedEnd = try file.size()
        buffer.reserveCapacity(Limits.maxFlushBytes + Limits.maxBatchBytes)
        // What the open recovered is the acknowledged end now (an earlier writer's file may
        // be behind it, or absent).
        acknowledgedFile = try storage.open(directory + "/" + AcknowledgedEnd.fileName, create: true, writable: true)
        do {
            try acknowledgedFile.truncate(to: Int64(AcknowledgedEnd.size))
            try writeAcknowledgedEnd()
        } catch {
            acknowledgedFile.close()
            throw error
        }
    }

    /// Tells read-only instances in other processes that every record before `nextOffset`
    /// is acknowledged (durable, in `fsync` mode): called after the sync, before the tickets
    /// complete. Not synced (docs/FORMAT.md, "Acknowledged end").
    private func writeAcknowledgedEnd() throws {
        try AcknowledgedEnd.encode(nextOffset).withUnsafeBytes { (raw) throws in try acknowledgedFile.write(raw, at: 0) }
    }

    func start(partition: Partition) throws {
        partition.shared.withLock { $0.writer.running = true }
        do {
            try startThread(name: "log-p\(partition.number)") { [self] in self.run(partition) }
        } catch {
            partition.shared.withLock { $0.writer.running = false }
            throw error
        }
    }

    /// Releases the lock of a writer whose thread never started (the open failed).
    func abandon(_ partition: Partition) {
        acknowledgedFile.close()
        lock.release()
        partition.shared.withLock { $0.writer.stopped = true }
    }

    // MARK: The flusher loop

    private func run(_ partition: Partition) {
        while true {
            let intervalNanoseconds: UInt64? = switch options.durability {
            case let .interval(ms): UInt64(ms) * 1_000_000
            default: nil
            }
            let (batches, syncRequests, closing) = partition.shared.wait(
                until: { !$0.writer.pending.isEmpty || $0.writer.closing || !$0.writer.syncRequests.isEmpty },
                timeoutNanoseconds: intervalNanoseconds.map { unsyncedBytes > 0 ? $0 : 1_000_000_000 }
            ) { state -> ([PendingAppend], [SyncRequest], Bool) in
                // Up to maxFlushBytes on disk (batches are compressed after they are taken:
                // their largest compressed length counts), and the memory they held leaves
                // the queue's account.
                var taken = 0, flushed = 0, queued = 0
                while taken < state.writer.pending.count && (taken == 0 || flushed + state.writer.pending[taken].batch.maxLength <= Limits.maxFlushBytes) {
                    flushed += state.writer.pending[taken].batch.maxLength
                    queued += state.writer.pending[taken].batch.queuedBytes
                    taken += 1
                }
                let batches = Array(state.writer.pending.prefix(taken))
                state.writer.pending.removeFirst(taken)
                state.writer.pendingBytes -= queued
                precondition(state.writer.pendingBytes >= 0 && (state.writer.pendingBytes == 0) == state.writer.pending.isEmpty,
                             "partition \(partition.number): \(state.writer.pendingBytes) bytes pending in \(state.writer.pending.count) batches")
                defer { state.writer.syncRequests = [] }
                return (batches, state.writer.syncRequests, state.writer.closing)
            }
            if !batches.isEmpty {
                PartitionWriter.wakeSpaceWaiters(partition)
                flush(batches, partition)
            }
            if !syncRequests.isEmpty { answer(syncRequests, partition) }
            if case let .interval(ms) = options.durability, unsyncedBytes > 0,
               MonotonicClock.nanoseconds - lastSync >= UInt64(ms) * 1_000_000 {
                do { try syncAndCheckpoint() } catch { fail(LogError.wrap(error), partition, []) }
            }
            let more = partition.shared.withLock { !$0.writer.pending.isEmpty }
            if closing && !more { break }
        }
        finish(partition)
    }

    /// Makes everything written so far durable for callers of `Partition.sync` (each asked
    /// after the records it needs durable were published, so they are written by now).
    private func answer(_ requests: [SyncRequest], _ partition: Partition) {
        if let failure = partition.shared.withLock({ $0.writer.failure }) {
            for request in requests { request.complete(.failure(.writerFailed(partition: partition.number, reason: failure.description))) }
            return
        }
        do {
            if unsyncedBytes > 0 { try syncAndCheckpoint() }
        } catch {
            let failure = LogError.wrap(error)
            fail(failure, partition, [])
            for request in requests { request.complete(.failure(failure)) }
            return
        }
        for request in requests { request.complete(.success(())) }
    }

    /// Writes, syncs and acknowledges one group of batches (compressing those whose
    /// appenders have not: `QueuedBatch`).
    private func flush(_ batches: [PendingAppend], _ partition: Partition) {
        precondition(!batches.isEmpty, "partition \(partition.number): a flush of no batches")
        var acknowledgements: [AppendAcknowledgement] = []
        acknowledgements.reserveCapacity(batches.count)
        var written: [(BatchHeader, Int64)] = []
        // Batches before this index are acknowledged already (durable in a sealed segment).
        var acknowledgedCount = 0
        do {
            if let failure = partition.shared.withLock({ $0.writer.failure }) { throw failure }
            let encoded = try batches.map { try $0.batch.compressed() }
            buffer.removeAll(keepingCapacity: true)
            for (pending, batch) in zip(batches, encoded) {
                if let expected = pending.expectedBaseOffset, expected != nextOffset {
                    throw LogError.invalidArgument("batch expected base offset \(expected) but the partition is at \(nextOffset)")
                }
                let length = batch.bytes.count
                precondition(batch.recordCount > 0 && length > BatchHeader.size,
                             "partition \(partition.number): a batch of \(batch.recordCount) records in \(length) bytes")
                let segmentFull = position + Int64(buffer.count + length) > segmentBytes
                // Relative offsets in the index are 32-bit: roll long before they could overflow.
                let offsetsFull = nextOffset - segmentBase + Int64(batch.recordCount) > Int64(UInt32.max) - 1
                if (segmentFull || offsetsFull) && position + Int64(buffer.count) > 0 {
                    try writeBuffer()
                    try sealActiveSegment(partition, publishing: &written)
                    try writeAcknowledgedEnd()
                    // Durable in the sealed segment: acknowledge now, whatever happens next.
                    for i in acknowledgedCount..<acknowledgements.count { batches[i].ticket.complete(.success(acknowledgements[i])) }
                    acknowledgedCount = acknowledgements.count
                    try startNextSegment(partition)
                }
                // Partition.append refuses a batch larger than a segment, and a full segment
                // was rolled above: the batch fits where it goes.
                precondition(position + Int64(buffer.count + length) <= segmentBytes,
                             "partition \(partition.number): a batch of \(length) bytes at \(position + Int64(buffer.count)) overruns a segment of \(segmentBytes)")
                try ensureZeroed(through: position + Int64(buffer.count + length))
                let at = position + Int64(buffer.count)
                buffer.append(contentsOf: batch.bytes)
                let stamped = buffer.withUnsafeMutableBytes { raw -> BatchHeader? in
                    guard let start = raw.baseAddress else { return nil }
                    chainHead = BatchHeader.stamp(baseOffset: nextOffset, previous: chainHead, batch: start + (raw.count - length), length: length)
                    return BatchHeader(
                        batchLength: length, crc: 0, codec: .none, baseOffset: nextOffset, recordCount: batch.recordCount,
                        uncompressedLength: 0, compressedLength: length - BatchHeader.size,
                        firstTimestamp: batch.firstTimestamp, maxTimestamp: batch.maxTimestamp)
                }
                guard let header = stamped else { preconditionFailure("partition \(partition.number): no write buffer after appending \(length) bytes") }
                written.append((header, at))
                acknowledgements.append(AppendAcknowledgement(
                    partition: partition.number, baseOffset: nextOffset, recordCount: batch.recordCount,
                    durability: options.durability))
                nextOffset += Int64(batch.recordCount)
                maxTimestamp = max(maxTimestamp, batch.maxTimestamp)
            }
            try writeBuffer()
            if options.durability == .fsync { try syncAndCheckpoint() }
            try writeAcknowledgedEnd()
        } catch {
            fail(LogError.wrap(error), partition, Array(batches[acknowledgedCount...]))
            return
        }
        publish(partition, written: written, sealed: false)
        for i in acknowledgedCount..<batches.count { batches[i].ticket.complete(.success(acknowledgements[i])) }
    }

    private func writeBuffer() throws {
        guard !buffer.isEmpty else { return }
        // Data goes only where zeros were written first (ensureZeroed): a reader beside the
        // writer meets written bytes or zeros, never the end of the file inside a batch.
        precondition(position + Int64(buffer.count) <= zeroedEnd, "writing \(buffer.count) bytes at \(position) with zeros up to \(zeroedEnd)")
        try buffer.withUnsafeBytes { (raw) throws in try file.write(raw, at: position) }
        position += Int64(buffer.count)
        unsyncedBytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Keeps zero-filled space ahead of the data so that fdatasync rarely grows the file.
    private func ensureZeroed(through end: Int64) throws {
        guard end > zeroedEnd else { return }
        let target = max(end, min(zeroedEnd + Int64(options.preallocationBytes), segmentBytes))
        var at = zeroedEnd
        while at < target {
            let count = Int(min(Int64(Self.zeros.count), target - at))
            try Self.zeros.withUnsafeBytes { (raw) throws in
                try file.write(UnsafeRawBufferPointer(rebasing: raw[0..<count]), at: at)
            }
            at += Int64(count)
        }
        zeroedEnd = target
        precondition(zeroedEnd >= end, "zeros up to \(zeroedEnd), data up to \(end)")
    }

    private func syncAndCheckpoint() throws {
        try file.sync()
        unsyncedBytes = 0
        lastSync = MonotonicClock.nanoseconds
        if position - checkpointPosition >= Int64(options.recoveryCheckpointBytes) { try saveRecoveryPoint() }
    }

    /// Saves the active segment's index beside it at close, so that the next read-only open
    /// walks only the batches after its last entry, not the whole segment (a query process
    /// opens the log read-only for every question). A hint: not synced, validated on load,
    /// and a failure to write it costs a longer walk, not data. (Saving it at checkpoints
    /// too made the fault simulator's runs depend on thread timing; close is where a CLI
    /// writer leaves the log for the queries that follow.)
    private func writeActiveIndex(_ partition: Partition) {
        guard let active = partition.shared.withLock({ $0.segments.last }), active.baseOffset == segmentBase, let index = active.index else { return }
        let path = String(active.path.dropLast(SegmentFile.logExtension.count)) + SegmentFile.activeIndexExtension
        let bytes = index.encodedActive()
        guard let file = try? storage.open(path, create: true, writable: true) else { return }
        defer { file.close() }
        try? file.truncate(to: 0)
        try? bytes.withUnsafeBytes { (raw) throws in try file.write(raw, at: 0) }
    }

    private func saveRecoveryPoint() throws {
        let point = RecoveryPoint(segmentBase: segmentBase, position: position, nextOffset: nextOffset, maxTimestamp: maxTimestamp)
        try storage.writeAtomically(point.encoded(), directory: directory, name: RecoveryPoint.fileName)
        checkpointPosition = position
    }

    /// Seals the active segment: sync, cut the zero-filled tail, publish its last
    /// batches and write its index files.
    private func sealActiveSegment(_ partition: Partition, publishing written: inout [(BatchHeader, Int64)]) throws {
        try file.sync()
        try file.truncate(to: position)
        try file.sync()
        unsyncedBytes = 0
        publish(partition, written: written, sealed: true)
        written.removeAll()
        let sealed = partition.shared.withLock { $0.segments.last }
        if let sealed, let index = sealed.index {
            let stem = String(sealed.path.dropLast(SegmentFile.logExtension.count))
            // A partial index must never pass for a sealed segment's: its hint goes first.
            try? storage.remove(stem + SegmentFile.activeIndexExtension)
            // The index is a hint (validated on load): a failure to write it costs a rebuild, not data.
            try? SegmentIndexLoader(storage: storage, writable: true, intervalBytes: options.indexIntervalBytes).write(index, stem: stem)
        }
    }

    /// Starts the next segment, named by the next offset, zero-filled, with its directory
    /// entry synced and a recovery point naming it.
    private func startNextSegment(_ partition: Partition) throws {
        let path = directory + "/" + SegmentFile.name(baseOffset: nextOffset, extension: SegmentFile.logExtension)
        let next = try storage.open(path, create: true, writable: true)
        file = next
        segmentBase = nextOffset
        position = 0
        zeroedEnd = 0
        try ensureZeroed(through: 1)
        try file.sync()
        try storage.syncDirectory(directory)
        try saveRecoveryPoint()
        let segment = SegmentState(baseOffset: segmentBase, path: path, access: .held(next), size: 0, nextOffset: nextOffset,
                                   index: SegmentIndex(intervalBytes: options.indexIntervalBytes), sealed: false)
        partition.shared.withLock { $0.segments.append(segment) }
    }

    /// Makes written batches visible to readers.
    private func publish(_ partition: Partition, written: [(BatchHeader, Int64)], sealed: Bool) {
        partition.shared.withLock { state in
            guard let last = state.segments.indices.last else { return }
            let segmentBase = state.segments[last].baseOffset
            for (header, at) in written {
                state.segments[last].index?.add(batch: header, segmentBase: segmentBase, position: at)
            }
            if let final = written.last {
                state.segments[last].size = final.1 + Int64(final.0.batchLength)
                state.segments[last].nextOffset = final.0.nextOffset
            }
            if sealed { state.segments[last].seal(sharing: partition.segmentFiles) }
        }
    }

    /// After a failed write or sync the page cache can no longer be trusted (a failed
    /// fdatasync may have dropped dirty pages): fail these appends and every later one.
    private func fail(_ error: LogError, _ partition: Partition, _ batches: [PendingAppend]) {
        let waiters = partition.shared.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.writer.failure == nil { state.writer.failure = error }
            let waiters = state.writer.spaceWaiters
            state.writer.spaceWaiters = []
            return waiters
        }
        for pending in batches { pending.ticket.complete(.failure(error)) }
        for waiter in waiters { waiter.resume() }
    }

    /// Final sync, recovery point, lock release; fails what is still queued.
    private func finish(_ partition: Partition) {
        let healthy = partition.shared.withLock { $0.writer.failure == nil }
        if healthy {
            do {
                try file.sync()
                try file.truncate(to: position)
                try file.sync()
                try saveRecoveryPoint()
                // The next open (often a query process) then resumes its walk at the last batch.
                writeActiveIndex(partition)
            } catch {
                fail(LogError.wrap(error), partition, [])
            }
        }
        acknowledgedFile.close()
        lock.release()
        let (leftover, waiters, closers, syncs, failure) = partition.shared.withLock { state in
            state.writer.stopped = true
            let result = (state.writer.pending, state.writer.spaceWaiters, state.writer.closeWaiters, state.writer.syncRequests, state.writer.failure)
            state.writer.pending = []
            state.writer.spaceWaiters = []
            state.writer.closeWaiters = []
            state.writer.syncRequests = []
            return result
        }
        for pending in leftover { pending.ticket.complete(.failure(.closed)) }
        // The final sync covered everything written, unless it failed.
        for request in syncs { request.complete(failure.map { .failure($0) } ?? .success(())) }
        for waiter in waiters { waiter.resume() }
        for closer in closers { closer.resume() }
    }

    /// Resumes appenders that waited for queue space, once there is some.
    static func wakeSpaceWaiters(_ partition: Partition) {
        let waiters = partition.shared.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.writer.pendingBytes < Limits.maxPendingBytesPerPartition else { return [] }
            let waiters = state.writer.spaceWaiters
            state.writer.spaceWaiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Nanoseconds from a monotonic clock.
enum MonotonicClock {
    static var nanoseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
