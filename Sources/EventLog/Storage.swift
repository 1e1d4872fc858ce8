#if !os(Linux)
// Linux only (issue 17, item 12): the storage layer's durability rests on fdatasync,
// posix_fallocate and flock as Linux defines them. On macOS fsync does not reach the disk
// (F_FULLFSYNC would be needed), so a build there would promise what it cannot keep.
#error("Backorder runs on Linux only: see docs/RELIABILITY.md, \"Platform\"")
#endif

/// The file-system operations the log needs, and nothing more.
///
/// All file access of the log goes through this interface so that a simulator can
/// inject faults (lost unsynced writes, torn writes, ENOSPC, EIO, bit flips) without the
/// log's logic knowing. `PosixStorage` is the real implementation.
public protocol Storage: Sendable {
    /// Opens a file; `create` makes it if missing (the caller syncs the directory).
    func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile
    /// Creates a directory (and missing parents). Succeeds if it exists.
    func createDirectory(_ path: String) throws
    /// Names of the entries of a directory (not `.` and `..`).
    func listDirectory(_ path: String) throws -> [String]
    /// Whether a file or directory exists at `path`.
    func exists(_ path: String) -> Bool
    /// Atomically replaces `to` with `from` (the caller syncs the directory).
    func rename(_ from: String, to: String) throws
    /// Deletes a file; succeeds if it is already gone.
    func remove(_ path: String) throws
    /// Deletes an empty directory; succeeds if it is already gone.
    func removeDirectory(_ path: String) throws
    /// Makes the directory's entries (creations, renames, removals) durable.
    func syncDirectory(_ path: String) throws
    /// Takes an exclusive advisory lock on `path` (created if missing), held until the
    /// returned lock is released or the process exits. Throws `.locked` when another
    /// holder has it.
    func lock(_ path: String) throws -> any StorageLock
    /// Whether someone holds the lock at `path` now (false when the file is missing). A
    /// probe: it takes the lock and releases it at once, so a writer opening meanwhile
    /// retries. Any failure other than "held" counts as held (a reader that cannot tell
    /// keeps to the limit the writer published).
    func isLockHeld(_ path: String) -> Bool
}

/// An open file.
public protocol StorageFile: AnyObject, Sendable {
    /// The path it was opened with, for error messages.
    var path: String { get }
    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws
    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (short at end of file).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
    /// Makes written data durable (fdatasync).
    func sync() throws
    /// The file's size in bytes.
    func size() throws -> Int64
    /// Cuts or extends the file to `size` bytes.
    func truncate(to size: Int64) throws
    /// Closes the file; later calls fail.
    func close()
}

/// An exclusive lock; released by `release()` or when the process exits.
public protocol StorageLock: AnyObject, Sendable {
    /// Releases the lock.
    func release()
}

extension StorageFile {
    /// Reads exactly `buffer.count` bytes or throws a corruption error naming the shortfall.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        let n = try read(into: buffer, at: offset)
        guard n == buffer.count else {
            throw LogError.corrupt(path: path, offset: offset, reason: "file ends after \(n) of \(buffer.count) expected bytes")
        }
    }
}
