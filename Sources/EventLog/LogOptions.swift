/// When an append is acknowledged relative to the disk.
public enum Durability: Sendable, Equatable, CustomStringConvertible {
    /// The append returns after its bytes (and any new file's directory entry) are on
    /// disk. Concurrent appends share one fdatasync (group commit). Survives kill -9 and power loss.
    case fsync
    /// The append returns once written to the OS; the writer syncs every `milliseconds`.
    /// Survives kill -9; a power loss may lose up to that window.
    case interval(milliseconds: Int)
    /// The append returns once written to the OS; syncs only when a segment is sealed and
    /// on close. Survives kill -9; a power loss may lose everything unsealed.
    case none

    public var description: String {
        switch self {
        case .fsync: "fsync"
        case let .interval(ms): "interval(\(ms) ms)"
        case .none: "none"
        }
    }

    /// Parses `fsync`, `none`, `interval` (100 ms) or `interval:N` (N ms).
    public init?(parsing text: String) {
        switch text {
        case "fsync": self = .fsync
        case "none": self = .none
        case "interval": self = .interval(milliseconds: 100)
        default:
            guard text.hasPrefix("interval:"), let ms = Int(text.dropFirst(9)), ms > 0 else { return nil }
            self = .interval(milliseconds: ms)
        }
    }
}

/// How a log is opened.
public struct LogOptions: Sendable {
    /// Partitions of a new log (an existing log keeps its own count).
    public var partitionCount = 8
    /// Codec of new batches (an existing log keeps its own, from the manifest).
    public var codec: Codec = .lz4
    /// Segment size of a new log.
    public var segmentBytes = 64 << 20
    /// Acknowledgement policy of appends.
    public var durability: Durability = .fsync
    /// Whether this instance appends. A writable log locks every partition; a read-only
    /// one never changes a file.
    public var writable = true
    /// Create the directory and manifest when missing (writable only).
    public var createIfMissing = true
    /// How long to wait for another writer to release a partition's lock.
    public var lockTimeoutMilliseconds = 10_000
    /// The writer keeps this many zero-filled bytes ahead of the data, so that fdatasync
    /// overwrites blocks instead of growing the file on every flush.
    public var preallocationBytes = 4 << 20
    /// One sparse index entry per this many bytes of segment data.
    public var indexIntervalBytes = 4096
    /// The recovery point is saved after this many durable bytes, bounding the tail that
    /// must be checksummed on the next open.
    public var recoveryCheckpointBytes = 16 << 20
    /// At most this many sealed segments are open at once (shared by the partitions; the
    /// active segments are open besides): the log's file descriptors are bounded by this,
    /// not by its number of segments. A reader that reaches a segment not open opens it,
    /// letting the least recently used ones go.
    public var maxOpenSegmentFiles = 256

    /// The defaults: 8 partitions, lz4, 64 MiB segments, fsync, writable.
    public init() {}
}

/// What an append got.
public struct AppendAcknowledgement: Sendable, Equatable {
    /// The partition written.
    public let partition: Int
    /// Offset of the first record of the batch; the rest follow densely.
    public let baseOffset: Int64
    /// Records in the batch.
    public let recordCount: Int
    /// The durability this acknowledgement stands for.
    public let durability: Durability

    /// Offset after the batch's last record.
    public var nextOffset: Int64 { baseOffset + Int64(recordCount) }
}
