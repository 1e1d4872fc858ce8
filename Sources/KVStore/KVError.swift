import EventLog

/// What can go wrong in a key-value store, each case saying where.
///
/// `description` is a sentence for a person: it names the file and, for damage, the byte
/// offset, so that a command-line tool can print it as it is.
public enum KVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file-system call failed (the storage layer's error, which names the call and path).
    case storage(LogError)
    /// Stored bytes do not match their checksum or their framing.
    case corrupt(path: String, offset: Int64, reason: String)
    /// The directory's MANIFEST is missing: there is no store there yet.
    case missing(path: String)
    /// A store written by a newer format version.
    case unsupportedVersion(path: String, found: Int, supported: Int)
    /// A key or value beyond the limits, or a call the store's mode does not allow.
    case invalidArgument(String)
    /// The background worker failed earlier (a write or sync error): the store accepts no
    /// more flushes; reopen it to recover from what is on disk.
    case workerFailed(String)
    /// The store was closed.
    case closed

    public var description: String {
        switch self {
        case let .storage(error): error.description
        case let .corrupt(path, offset, reason): "corruption in \(path) at byte offset \(offset): \(reason)"
        case let .missing(path): "\(path) holds no key-value store (no MANIFEST)"
        case let .unsupportedVersion(path, found, supported):
            "\(path) has format version \(found); this build reads versions 1 to \(supported) only"
        case let .invalidArgument(message): message
        case let .workerFailed(reason): "the store's background writer stopped after a failure (\(reason)); reopen the store"
        case .closed: "the key-value store is closed"
        }
    }

    /// Any error from the storage layer or this module, as a `KVError`.
    static func wrap(_ error: any Error) -> KVError {
        if let error = error as? KVError { return error }
        if let error = error as? LogError { return .storage(error) }
        return .invalidArgument("unexpected error: \(error)")
    }
}
