/// A batch in a partition's queue, compressed by whichever thread reaches it first: the
/// appender, through `compress()` (the event store calls it once it lets go of its index
/// lock), or the partition's writer when the batch's turn comes (`compressed()`). A writer
/// with time to spare — one of many partitions, waiting for work — takes the compression
/// off the appender; a busy one — a single partition's, the log's limit: compressing there
/// always cost LogBench a fifth of its throughput — finds it done. No one holds a lock
/// while it runs, and the writer never waits on work that nobody started.
public final class QueuedBatch: Sendable {
    private enum Stage {
        case waiting(EncodedBatch)
        case compressing
        case done(Result<EncodedBatch, LogError>)
    }

    private let stage: ConditionLock<Stage>
    /// Bytes of memory the batch holds while queued (its records before compression).
    let queuedBytes: Int
    /// The most bytes the batch takes on disk, header included.
    let maxLength: Int

    init(_ batch: EncodedBatch) {
        queuedBytes = batch.bytes.count
        maxLength = batch.maxLength
        stage = ConditionLock(batch.isCompressed ? .done(.success(batch)) : .waiting(batch))
    }

    /// Compresses the batch unless another thread has started to. Call it outside any lock
    /// an appender holds: that is its point.
    public func compress() {
        let claimed: EncodedBatch? = stage.withLock { stage in
            guard case let .waiting(batch) = stage else { return nil }
            stage = .compressing
            return batch
        }
        guard var batch = claimed else { return }
        let result: Result<EncodedBatch, LogError>
        do {
            try batch.compress()
            result = .success(batch)
        } catch {
            result = .failure(LogError.wrap(error))
        }
        stage.withLock { $0 = .done(result) }
        stage.broadcast()
    }

    /// The compressed batch: compressed on this thread if no one has started, else waited for.
    func compressed() throws -> EncodedBatch {
        compress()
        return try stage.wait(until: { if case .done = $0 { true } else { false } }, timeoutNanoseconds: nil) { stage in
            guard case let .done(result) = stage else { preconditionFailure("a queued batch's wait ended before it was compressed") }
            return try result.get()
        }
    }
}
