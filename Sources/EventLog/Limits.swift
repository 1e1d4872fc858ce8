/// Explicit upper bounds of the format and the writer. Every buffer and queue is bounded
/// by one of these; a value read from disk beyond them is treated as corruption.
public enum Limits {
    /// Records in one batch.
    public static let maxRecordsPerBatch = 100_000
    /// Bytes of one batch on disk, header included.
    public static let maxBatchBytes = 16 << 20
    /// Bytes of one batch's records before compression.
    public static let maxUncompressedBatchBytes = 16 << 20
    /// Bytes of one record's key.
    public static let maxKeyBytes = 64 << 10
    /// Bytes of one record's value.
    public static let maxValueBytes = 4 << 20
    /// Partitions in one log.
    public static let maxPartitions = 1024
    /// Smallest segment size.
    public static let minSegmentBytes = 64 << 10
    /// Largest segment size (positions in the index are 32-bit).
    public static let maxSegmentBytes = 1 << 31
    /// Encoded batches waiting for the writer of one partition before appenders wait.
    public static let maxPendingBytesPerPartition = 64 << 20
    /// Bytes one flush writes at most with a single pwrite before it syncs.
    public static let maxFlushBytes = 8 << 20
    /// Walks of the last segment an open makes before it gives up on reads that disagree
    /// (a tail is cut only where two walks agree).
    public static let recoveryWalks = 4
}
