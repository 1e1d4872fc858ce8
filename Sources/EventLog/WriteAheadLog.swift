/// The write-ahead log: a directory of partitions, each a sequence of segment files of
/// checksummed, compressed record batches (docs/FORMAT.md).
///
/// ```swift
/// let log = try await WriteAheadLog.open(at: "data/log")
/// var batch = RecordBatchBuilder()
/// try batch.append(key: Array("acme/R-1".utf8), value: payload, timestamp: now)
/// let ack = try await log.append(batch, partition: log.partition(forKey: Array("acme/R-1".utf8)))
/// var cursor = try log.cursor(partition: ack.partition, from: 0)
/// while let read = try cursor.next() { read.forEach { record in … } }
/// try await log.close()
/// ```
///
/// A writable instance holds every partition's lock until `close()`; another writer, in
/// this process or another, waits up to `lockTimeoutMilliseconds` and then gets `.locked`.
/// Any number of read-only instances may open the log at the same time.
public final class WriteAheadLog: Sendable {
    /// The log's directory.
    public let path: String
    /// The manifest read or written at open.
    public let manifest: Manifest
    /// What the open found and repaired: torn tails truncated, each with file, offset and
    /// bytes dropped. Empty after a clean shutdown.
    public let recoveryEvents: [RecoveryEvent]
    /// The acknowledgement policy of appends.
    public let durability: Durability
    private let partitions: [Partition]
    /// Number of partitions (stored: read on every append).
    public let partitionCount: Int

    private init(path: String, manifest: Manifest, partitions: [Partition], durability: Durability) {
        self.path = path
        self.manifest = manifest
        self.partitions = partitions
        self.partitionCount = partitions.count
        self.durability = durability
        self.recoveryEvents = partitions.flatMap(\.recoveryEvents)
    }

    /// Opens the log at `path`, creating it when missing and `options` allow.
    public static func open(at path: String, options: LogOptions = LogOptions(),
                            storage: any Storage = PosixStorage()) async throws -> WriteAheadLog {
        let manifest = try await loadOrCreateManifest(path: path, options: options, storage: storage)
        if options.writable && manifest.version < Manifest.currentVersion {
            throw LogError.invalidArgument("\(path) is a log of format version \(manifest.version), whose batches carry no hash chain; this build reads it but appends only to logs of version \(Manifest.currentVersion) (docs/FORMAT.md, \"Versions\")")
        }
        guard options.maxOpenSegmentFiles >= 1 else {
            throw LogError.invalidArgument("maxOpenSegmentFiles \(options.maxOpenSegmentFiles) must be at least 1")
        }
        let segmentFiles = OpenSegmentFiles(storage: storage, capacity: options.maxOpenSegmentFiles)
        var partitions: [Partition] = []
        var locks: [any StorageLock] = []
        do {
            if options.writable {
                // Partition directories are created once; make their entries durable (on every
                // writable open: an earlier one may have failed between the two steps).
                for number in 0..<manifest.partitionCount where !storage.exists(path + "/" + partitionDirectoryName(number)) {
                    try storage.createDirectory(path + "/" + partitionDirectoryName(number))
                }
                try storage.syncDirectory(path)
            }
            for number in 0..<manifest.partitionCount {
                let directory = path + "/" + partitionDirectoryName(number)
                var lock: (any StorageLock)?
                if options.writable {
                    lock = try await acquireLock(directory + "/LOCK", storage: storage, timeoutMilliseconds: options.lockTimeoutMilliseconds)
                    if let lock { locks.append(lock) }
                } else if !storage.exists(directory) {
                    throw LogError.notALog(path: path, reason: "partition directory \(directory) is missing")
                }
                let opener = PartitionOpener(number: number, directory: directory, storage: storage, options: options, manifest: manifest, segmentFiles: segmentFiles)
                partitions.append(try opener.open(lock: lock))
            }
            for partition in partitions { try partition.startWriter() }
        } catch {
            for partition in partitions { _ = await partition.close() }
            for lock in locks { lock.release() }
            throw error
        }
        return WriteAheadLog(path: path, manifest: manifest, partitions: partitions, durability: options.durability)
    }


    /// The partition of records with `key` (stable FNV-1a hash).
    @inlinable
    public func partition<Key: Sequence<UInt8>>(forKey key: Key) -> Int {
        Partitioner.partition(forKey: key, partitionCount: partitionCount)
    }

    /// Appends a batch to one partition, atomically: all its records or none become
    /// visible, with dense offsets. Returns when the batch has the log's durability.
    public func append(_ batch: RecordBatchBuilder, partition: Int) async throws -> AppendAcknowledgement {
        let target = try self.partition(partition)
        await target.waitForQueueSpace()
        return try await target.submit(compressed(batch), expectedBaseOffset: nil).acknowledgement()
    }

    /// Compresses a batch and queues it for the writer without waiting for the disk; the
    /// ticket tells when it is acknowledged. Batches submitted to one partition are
    /// written in submission order. With `expectedBaseOffset`, a batch that would not land
    /// exactly there is not written: it fails, with the rest of its flush group, and the
    /// partition's writer stops (a wrong prediction means the caller's view of the log is
    /// wrong; reopening recovers). Call `waitForQueueSpace`
    /// first to respect the writer's bounded queue.
    public func submit(_ batch: RecordBatchBuilder, partition: Int, expectedBaseOffset: Int64? = nil) throws -> AppendTicket {
        try self.partition(partition).submit(compressed(batch), expectedBaseOffset: expectedBaseOffset)
    }

    /// `submit` without compressing first: the batch is queued as it is, and compressed by
    /// `QueuedBatch.compress()` — which the caller runs once it holds no lock, best on
    /// another task — or else by the partition's writer when the batch's turn comes. For an
    /// appender that queues under a lock of its own (the event store's index lock).
    public func queue(_ batch: RecordBatchBuilder, partition: Int, expectedBaseOffset: Int64? = nil) throws -> (ticket: AppendTicket, batch: QueuedBatch) {
        let queued = QueuedBatch(try batch.encoded(codec: manifest.codec, segmentBytes: manifest.segmentBytes))
        return (try self.partition(partition).queue(queued, expectedBaseOffset: expectedBaseOffset), queued)
    }

    private func compressed(_ batch: RecordBatchBuilder) throws -> EncodedBatch {
        var encoded = try batch.encoded(codec: manifest.codec, segmentBytes: manifest.segmentBytes)
        try encoded.compress()
        return encoded
    }

    /// Returns when `partition`'s writer queue has room (it is bounded by
    /// `Limits.maxPendingBytesPerPartition`).
    public func waitForQueueSpace(partition: Int) async throws {
        try await self.partition(partition).waitForQueueSpace()
    }

    /// A cursor over the batches of `partition` starting with the one holding `offset`.
    public func cursor(partition: Int, from offset: Int64) throws -> PartitionCursor {
        try self.partition(partition).cursor(from: offset)
    }

    /// The hash chain value of `partition` up to `offset` — the chain of the batch whose
    /// last record is `offset - 1` — read from that batch's header alone; nil when no batch
    /// ends there or the batch carries no chain (format 1). Two logs with the same value at
    /// an offset hold the same history up to it (docs/FORMAT.md, "Hash chain").
    public func chain(partition: Int, endingAt offset: Int64) throws -> ChainHash? {
        guard offset > 0 else { return nil }
        var cursor = try self.partition(partition).cursor(from: offset - 1)
        cursor.readAhead = 4_096
        guard let header = try cursor.nextHeader(), header.nextOffset == offset, header.version >= 2 else { return nil }
        return header.chain
    }

    /// The earliest offset of `partition` whose timestamp is ≥ `timestamp` (µs since the
    /// epoch), or nil when every record is older.
    public func offset(partition: Int, atOrAfterTimestamp timestamp: Int64) throws -> Int64? {
        try self.partition(partition).offset(forTimestamp: timestamp)
    }

    /// Offset after the last acknowledged record of `partition`.
    public func endOffset(partition: Int) throws -> Int64 {
        try self.partition(partition).endOffset
    }

    /// A log opened read-only catches up with what a writer in another process appended
    /// since (`Partition.refresh`): cursors and end offsets then see it. Returns whether
    /// any partition grew.
    @discardableResult
    public func refresh() throws -> Bool {
        guard partitions.allSatisfy(\.isReadOnly) else { throw LogError.invalidArgument("refresh is for a log opened read-only; this process writes it") }
        var grew = false
        for partition in partitions where try partition.refresh() { grew = true }
        return grew
    }

    /// Blocks until every record readers of this process can see is durable — in `none`
    /// and `interval` modes, the sync they otherwise wait for; nothing to do in `fsync`
    /// mode. A log opened read-only cannot know its writer's mode: it syncs each
    /// partition's active segment itself (`Partition.syncWhatWasRead`), which costs
    /// nothing when the writer synced already. A view calls it before committing
    /// positions, so that a power cut never leaves the view ahead of the log.
    public func sync() throws {
        if partitions.allSatisfy(\.isReadOnly) {
            for partition in partitions { try partition.syncWhatWasRead() }
            return
        }
        guard durability != .fsync else { return }
        // Every partition's writer syncs at once; then wait for all of them.
        let requests = try partitions.compactMap { try $0.requestSync() }
        for request in requests { try request.wait() }
    }

    /// Per-partition offsets, segments and sizes.
    public func statistics() -> [PartitionStatistics] { partitions.map(\.statistics) }

    /// Sealed segments open now (at most `LogOptions.maxOpenSegmentFiles`).
    public var openSegmentFiles: Int { partitions.first?.segmentFiles.count ?? 0 }

    /// Flushes and syncs what is queued, saves each partition's recovery point and
    /// releases the locks. Appends after this fail with `.closed`. Every partition is
    /// closed; then the first partition's failure is thrown — an earlier failed write or
    /// sync, or the final sync (in `none` and `interval` modes the sync point of what was
    /// acknowledged since the last one): the next open recovers from what is on disk.
    public func close() async throws {
        var firstFailure: LogError?
        for partition in partitions {
            if let failure = await partition.close(), firstFailure == nil { firstFailure = failure }
        }
        if let firstFailure { throw firstFailure }
    }

    private func partition(_ number: Int) throws -> Partition {
        guard partitions.indices.contains(number) else {
            throw LogError.invalidArgument("partition \(number) does not exist; the log has \(partitions.count)")
        }
        return partitions[number]
    }

    static func partitionDirectoryName(_ number: Int) -> String {
        let digits = String(number)
        return "partition-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func loadOrCreateManifest(path: String, options: LogOptions, storage: any Storage) async throws -> Manifest {
        let manifestPath = path + "/" + Manifest.fileName
        if let bytes = try storage.readWholeFile(manifestPath) { return try Manifest.decode(bytes, path: manifestPath) }
        guard options.writable && options.createIfMissing else {
            throw LogError.notALog(path: path, reason: "no \(Manifest.fileName) file")
        }
        guard (1...Limits.maxPartitions).contains(options.partitionCount) else {
            throw LogError.invalidArgument("partition count \(options.partitionCount) is outside 1...\(Limits.maxPartitions)")
        }
        guard (Limits.minSegmentBytes...Limits.maxSegmentBytes).contains(options.segmentBytes) else {
            throw LogError.invalidArgument("segment size \(options.segmentBytes) is outside \(Limits.minSegmentBytes)...\(Limits.maxSegmentBytes)")
        }
        try storage.createDirectory(path)
        // Even if the directory existed: whoever created it may have died before this sync.
        try storage.syncDirectory(parentDirectory(of: path))
        // Creation is serialized by a log-wide lock so two processes cannot write different manifests.
        let lock = try await acquireLock(path + "/LOCK", storage: storage, timeoutMilliseconds: options.lockTimeoutMilliseconds)
        defer { lock.release() }
        if let bytes = try storage.readWholeFile(manifestPath) { return try Manifest.decode(bytes, path: manifestPath) }
        try storage.remove(manifestPath + ".tmp")
        var random = SystemRandomNumberGenerator()
        let logID = (0..<2).map { _ in
            let hex = String(random.next(), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
        let manifest = Manifest(version: Manifest.currentVersion, partitionCount: options.partitionCount,
                                codec: options.codec, segmentBytes: options.segmentBytes, logID: logID)
        // The partition directories first: a reader that finds the MANIFEST must find them too.
        for number in 0..<manifest.partitionCount where !storage.exists(path + "/" + partitionDirectoryName(number)) {
            try storage.createDirectory(path + "/" + partitionDirectoryName(number))
        }
        try storage.syncDirectory(path)
        try storage.writeAtomically(manifest.encoded(), directory: path, name: Manifest.fileName)
        return manifest
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.dropLast(path.hasSuffix("/") ? 1 : 0).lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Tries the lock every few milliseconds until the timeout.
    private static func acquireLock(_ path: String, storage: any Storage, timeoutMilliseconds: Int) async throws -> any StorageLock {
        let deadline = MonotonicClock.nanoseconds + UInt64(max(0, timeoutMilliseconds)) * 1_000_000
        while true {
            do {
                return try storage.lock(path)
            } catch LogError.locked(let lockPath) {
                guard MonotonicClock.nanoseconds < deadline else { throw LogError.locked(path: lockPath) }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }
}
