#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong in the log, each case carrying where it happened.
///
/// `description` is a complete sentence meant for a person: it names the file, the byte
/// offset or the partition involved, so that a command-line tool can print it as it is.
public enum LogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed. `operation` is the call, `errno` the system error number.
    case io(operation: String, path: String, errno: Int32)
    /// The file system has no space left (ENOSPC or EDQUOT).
    case diskFull(path: String)
    /// The file system or the directory does not allow writing (EROFS, EACCES, EPERM).
    case readOnly(path: String)
    /// Stored bytes do not match their checksum or their framing, before the tail of the log.
    case corrupt(path: String, offset: Int64, reason: String)
    /// Another writer (in this or another process) holds the partition's lock.
    case locked(path: String)
    /// The directory holds no log, or its manifest is unreadable.
    case notALog(path: String, reason: String)
    /// A log written by a newer or unknown format version.
    case unsupportedVersion(path: String, found: Int, supported: Int)
    /// The caller asked for something the log cannot do (empty batch, too large, bad option…).
    case invalidArgument(String)
    /// An offset outside what the partition holds.
    case offsetOutOfRange(partition: Int, offset: Int64, start: Int64, end: Int64)
    /// The partition's writer failed earlier (for instance a failed fdatasync, after which
    /// the page cache can no longer be trusted); reopen the log to recover from disk.
    case writerFailed(partition: Int, reason: String)
    /// The log was closed.
    case closed

    public var description: String {
        switch self {
        case let .io(operation, path, code):
            return "\(operation) failed on \(path): \(String(cString: strerror(code))) (errno \(code))"
        case let .diskFull(path):
            return "disk full: no space left to write \(path); nothing acknowledged was lost — free space and retry"
        case let .readOnly(path):
            return "cannot write \(path): the file system or directory is read-only or not writable"
        case let .corrupt(path, offset, reason):
            return "corruption in \(path) at byte offset \(offset): \(reason)"
        case let .locked(path):
            return "\(path) is locked by another writer (another process or log instance appends to this partition)"
        case let .notALog(path, reason):
            return "\(path) is not a Backorder log: \(reason)"
        case let .unsupportedVersion(path, found, supported):
            return "\(path) has format version \(found); this build reads versions 1 to \(supported) only"
        case let .invalidArgument(message):
            return message
        case let .offsetOutOfRange(partition, offset, start, end):
            return "offset \(offset) is outside partition \(partition), which holds offsets \(start)..<\(end)"
        case let .writerFailed(partition, reason):
            return "the writer of partition \(partition) stopped after an I/O failure (\(reason)); reopen the log to recover"
        case .closed:
            return "the log is closed"
        }
    }

    /// Maps an errno from a write path to the most specific case.
    package static func fromErrno(_ code: Int32, operation: String, path: String) -> LogError {
        switch code {
        case ENOSPC, EDQUOT: return .diskFull(path: path)
        case EROFS, EACCES, EPERM: return .readOnly(path: path)
        default: return .io(operation: operation, path: path, errno: code)
        }
    }
}

extension LogError {
    /// The error as a `LogError`; anything else (which the log's own code never throws)
    /// becomes an I/O error that keeps its description.
    static func wrap(_ error: any Error) -> LogError {
        (error as? LogError) ?? .invalidArgument("unexpected error: \(error)")
    }
}
