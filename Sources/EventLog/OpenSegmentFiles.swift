import Foundation

/// How a segment's file is reached.
enum SegmentFileAccess: Sendable {
    /// Held open for the segment's life in this process: the active segment (its writer
    /// writes it, a reader follows its growth).
    case held(any StorageFile)
    /// Opened when read, through the log's bounded set of open files: a sealed segment.
    case shared(OpenSegmentFiles)
}

/// The open files of a log's sealed segments, at most `capacity` at a time (LevelDB's table
/// cache, `max_open_files`): a log holds a bounded number of file descriptors whatever its
/// number of segments. Before, every segment stayed open from the log's open to its close,
/// and a log of 20,000 segments failed to open with "too many open files".
///
/// Files are opened read-only (nothing writes a sealed segment). An evicted file is not
/// closed under its readers: a reader holds its own reference, and the file closes when the
/// last one lets go (`StorageFile`s close when released). So descriptors in use are at most
/// `capacity` plus one per reader positioned on an evicted segment.
final class OpenSegmentFiles: @unchecked Sendable {
    // @unchecked: `entries` and `clock` are touched only under `lock`.
    let storage: any Storage
    let capacity: Int
    private let lock = NSLock()
    private var entries: [String: (file: any StorageFile, used: UInt64)] = [:]
    private var clock: UInt64 = 0

    init(storage: any Storage, capacity: Int) {
        precondition(capacity >= 1, "a log keeps at least one sealed segment open (options are checked at open)")
        self.storage = storage
        self.capacity = capacity
    }

    /// Files open now (for tests and statistics).
    var count: Int { lock.withLock { entries.count } }

    /// The sealed segment's file, opened if it is not open; when `capacity` are open, the
    /// least recently used quarter of them is let go.
    func file(_ path: String) throws -> any StorageFile {
        if let file = lock.withLock({ touch(path) }) { return file }
        // Opened outside the lock: an open may wait on the disk, and readers of other
        // segments must not wait behind it.
        let opened = try storage.open(path, create: false, writable: false)
        return lock.withLock {
            if let raced = touch(path) { return raced }  // another reader opened it meanwhile
            if entries.count >= capacity {
                // The least recently used quarter goes at once: one sort per capacity / 4
                // opens, not a scan of every entry per open.
                let oldest = entries.sorted { $0.value.used < $1.value.used }.prefix(max(1, capacity / 4))
                for (path, _) in oldest { entries.removeValue(forKey: path) }
            }
            clock += 1
            entries[path] = (opened, clock)
            precondition(entries.count <= capacity, "\(entries.count) sealed segments open, the limit is \(capacity)")
            return opened
        }
    }

    /// Marks `path` used and returns its file (caller holds the lock).
    private func touch(_ path: String) -> (any StorageFile)? {
        guard entries[path] != nil else { return nil }
        clock += 1
        entries[path]!.used = clock
        return entries[path]!.file
    }
}
