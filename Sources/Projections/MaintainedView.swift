import EventLog
import EventStore
import KVStore

/// A view kept in a key-value store and brought up to date with a log (docs/PROJECTIONS.md):
/// opened either as its **writer** (holding the view's lock: it applies new events and
/// commits them with their positions) or as a **reader** (no lock: it reads the current
/// generation, and applies the events after the view's checkpoint in memory only, so that
/// it answers as of the log's end without writing anything).
public final class MaintainedView<P: ViewProjector> {
    public let directory: ViewDirectory
    public let generation: String
    public let store: KVStore
    public let projector: P
    public let source: any EventSource
    public let isWriter: Bool
    /// What the rows reflect now (including applied but uncommitted events).
    public private(set) var checkpoint: ViewCheckpoint
    /// Why the writer started an empty generation instead of continuing the current one
    /// (nil when it continued it).
    public let resetReason: String?
    private let lock: (any StorageLock)?
    /// A reader applies at most this many events in memory.
    public var readerTailLimit: Int64 = 500_000

    init(directory: ViewDirectory, generation: String, store: KVStore, source: any EventSource, isWriter: Bool,
                 checkpoint: ViewCheckpoint, resetReason: String?, lock: (any StorageLock)?) {
        self.directory = directory
        self.generation = generation
        self.store = store
        self.projector = P(store: store)
        self.source = source
        self.isWriter = isWriter
        self.checkpoint = checkpoint
        self.resetReason = resetReason
        self.lock = lock
    }

    /// Opens the view to maintain it: takes its lock (waiting up to `lockTimeoutMilliseconds`),
    /// opens the current generation (creating the first one), and checks its checkpoint
    /// against the source; when it does not fit (another log, another version of the view,
    /// a history that changed), a new empty generation replaces it and `resetReason` says
    /// why. The caller then `catchUp`s.
    public static func openWriter(root: String, source: any EventSource, options: KVOptions, storage: any Storage = PosixStorage(),
                                  lockTimeoutMilliseconds: Int = 10_000) throws -> MaintainedView {
        let directory = ViewDirectory(root: root, name: P.name, storage: storage)
        let lock = try directory.lock(timeoutMilliseconds: lockTimeoutMilliseconds)
        do {
            try directory.removeLeftovers()
            let ends = try source.endOffsets()
            var reason: String?
            if let current = directory.current() {
                let store: KVStore
                do { store = try KVStore.open(at: directory.path(of: current), mode: .writable, options: options, storage: storage) } catch let error as KVError {
                    // Damaged files: the view is a cache of the log, rebuilt below.
                    guard case .corrupt = error else { throw error }
                    return try replaceWithEmpty(directory, source: source, options: options, storage: storage, lock: lock,
                                                reason: "its files are damaged (\(error))")
                }
                let found = ViewCheckpoint(decoding: store.metadata)
                let problem = found.map { $0.mismatch(with: source, viewName: P.name, viewVersion: P.version, ends: ends) }
                    ?? (store.metadata.isEmpty ? nil : "its checkpoint does not decode")
                if problem == nil {
                    let checkpoint = found ?? empty(source)
                    return MaintainedView(directory: directory, generation: current, store: store, source: source, isWriter: true,
                                          checkpoint: checkpoint, resetReason: nil, lock: lock)
                }
                reason = problem
                try store.close()
            }
            return try replaceWithEmpty(directory, source: source, options: options, storage: storage, lock: lock, reason: reason)
        } catch {
            lock.release()
            throw error
        }
    }

    /// A new, empty generation, made current at once (catching up fills it).
    private static func replaceWithEmpty(_ directory: ViewDirectory, source: any EventSource, options: KVOptions, storage: any Storage,
                                         lock: any StorageLock, reason: String?) throws -> MaintainedView {
        do {
            let generation = try directory.newGeneration()
            let old = directory.current()
            precondition(old != generation, "view \(P.name): the new generation \(generation) is the current one")
            let store = try KVStore.open(at: directory.path(of: generation), mode: .writable, options: options, storage: storage)
            let checkpoint = empty(source)
            try store.freeze(metadata: checkpoint.encoded())
            try store.flush()
            try directory.setCurrent(generation)
            if let old { try directory.remove(old) }
            return MaintainedView(directory: directory, generation: generation, store: store, source: source, isWriter: true,
                                  checkpoint: checkpoint, resetReason: reason, lock: lock)
        } catch {
            lock.release()
            throw error
        }
    }

    /// Opens the current generation to read it, without any lock. Throws
    /// `ViewError.needsRebuild` when there is none or it does not fit the source.
    public static func openReader(root: String, source: any EventSource, options: KVOptions,
                                  storage: any Storage = PosixStorage()) throws -> MaintainedView {
        let directory = ViewDirectory(root: root, name: P.name, storage: storage)
        // A writer may swap generations meanwhile: retry once with the new CURRENT.
        var lastError: (any Error)?
        for _ in 0..<3 {
            guard let current = directory.current() else { throw ViewError.needsRebuild("there is no view yet") }
            do {
                let store = try KVStore.open(at: directory.path(of: current), mode: .readOnly, options: options, storage: storage)
                let ends = try source.endOffsets()
                guard let checkpoint = ViewCheckpoint(decoding: store.metadata) else {
                    throw ViewError.needsRebuild(store.metadata.isEmpty ? "the view holds nothing yet" : "its checkpoint does not decode")
                }
                if let problem = checkpoint.mismatch(with: source, viewName: P.name, viewVersion: P.version, ends: ends) {
                    throw ViewError.needsRebuild(problem)
                }
                return MaintainedView(directory: directory, generation: current, store: store, source: source, isWriter: false,
                                      checkpoint: checkpoint, resetReason: nil, lock: nil)
            } catch let error as ViewError {
                throw error
            } catch {
                lastError = error
            }
        }
        throw lastError ?? ViewError.needsRebuild("the view could not be opened")
    }

    static func empty(_ source: any EventSource) -> ViewCheckpoint {
        ViewCheckpoint(viewName: P.name, viewVersion: P.version, sourceID: source.sourceID ?? "", lanes: source.partitionCount)
    }

    /// Events in the log after the view's checkpoint.
    public func eventsBehind() throws -> Int64 { checkpoint.eventsBehind(try source.endOffsets()) ?? 0 }

    /// Applies the events after the checkpoint up to `limit` (default: the log's end now).
    /// A writer commits whenever the store's memtable is full and at the end; a reader keeps
    /// everything in memory (up to `readerTailLimit` events). `progress` gets the events
    /// applied so far in this call.
    @discardableResult
    public func catchUp(upTo limit: [Int64]? = nil, commitAtEnd: Bool = true, progress: (Int64) -> Void = { _ in }) throws -> Int64 {
        let ends = try limit ?? source.endOffsets()
        precondition(ends.count == checkpoint.positions.count, "view \(P.name): lane count changed under the view")
        if !isWriter, let behind = checkpoint.eventsBehind(ends), behind > readerTailLimit {
            throw ViewError.tailTooLarge(events: behind, limit: readerTailLimit)
        }
        var applied: Int64 = 0
        for lane in ends.indices where checkpoint.positions[lane] < ends[lane] {
            var cursor = try source.events(partition: lane, from: checkpoint.positions[lane])
            let end = ends[lane]
            var more = true
            while more && checkpoint.positions[lane] < end {
                more = try cursor.nextBatch { event in
                    guard event.position.offset < end else { return }
                    try projector.apply(event)
                    checkpoint.advance(lane: lane, past: event)
                    applied += 1
                }
                if isWriter && store.needsFreeze { try commit() }
                progress(applied)
            }
        }
        if commitAtEnd && (applied > 0 || !isWriter || checkpoint.encoded() != store.metadata) { try commit() }
        return applied
    }

    /// Makes everything applied so far one commit: the rows and the checkpoint together.
    /// (A reader's commit stays in memory.)
    public func commit() throws {
        // The log first: a view's durable positions never pass the log's durable end.
        if isWriter { try source.makeDurable() }
        if isWriter { checkpoint.markHistory(source) }
        try projector.prepareCommit()
        try store.freeze(metadata: checkpoint.encoded())
    }

    /// A read view of the rows as of the last commit.
    public func snapshot() -> KVSnapshot { store.snapshot() }

    /// A read view of everything applied so far, without committing it (writer only): the
    /// rows are sealed in memory and go to disk with the next `commit`. For a writer that
    /// publishes often (a server): a commit makes a table file each time, which compaction
    /// then merges; this makes none, and costs each lookup one more memtable until the next
    /// commit.
    public func uncommittedSnapshot() throws -> KVSnapshot {
        precondition(isWriter, "view \(P.name): only the writer has uncommitted rows")
        try projector.prepareCommit()
        return store.writerSnapshot()
    }

    /// Flushes committed rows (writer), closes the store and releases the lock.
    public func close() throws {
        defer { lock?.release() }
        try store.close()
    }
}
