#if canImport(Glibc)
import Glibc
#endif
import EventLog
import KVStore

/// What can go wrong in the event store, each with a sentence for a person.
public enum EventStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Optimistic concurrency: the stream is not at the expected version.
    case wrongExpectedVersion(tenant: String, stream: String, expected: ExpectedVersion, actual: Int64)
    /// The log failed (disk full, corruption, lock…).
    case log(LogError)
    /// A stored event could not be decoded.
    case malformedEvent(Position, String)
    /// A system call on an index file failed.
    case io(String, Int32)
    /// A bad argument: empty or oversized field, unknown stream…
    case invalidArgument(String)
    /// An earlier failure stopped appends to this partition; reopen the store.
    case partitionFailed(Int, String)
    /// The store cannot take appends for now, through no fault of the caller's events: a
    /// cluster did not answer, or appends stopped after a publish whose outcome is not
    /// known. The message says what happened and when appends come back.
    case unavailable(String)
    /// The index's rows failed their checksum or framing (or could not be read). The
    /// store stops rather than guess; the log is intact and the index is rebuilt from it.
    case indexDamaged(String)
    /// An event reused the id of another event of its tenant with different content: a
    /// resend must be the same event. `original` says where the first one is.
    case idConflict(tenant: String, id: EventID, original: String)

    public var description: String {
        switch self {
        case let .wrongExpectedVersion(tenant, stream, expected, actual):
            return "wrong expected version for stream \(stream) of tenant \(tenant): expected \(expected), but the stream is at version \(actual)"
        case let .log(error):
            return error.description
        case let .malformedEvent(position, reason):
            return "stored event at \(position) is malformed: \(reason)"
        case let .io(operation, code) where code == ENOSPC || code == EDQUOT:
            return "disk full: \(operation) failed: \(String(cString: strerror(code))) (errno \(code)); free space and retry"
        case let .io(operation, code):
            return "\(operation) failed: \(String(cString: strerror(code))) (errno \(code))"
        case let .invalidArgument(message):
            return message
        case let .unavailable(message):
            return message
        case let .partitionFailed(partition, reason):
            return "appends to partition \(partition) stopped after an earlier failure (\(reason)); reopen the store"
        case let .indexDamaged(reason):
            return "the event index is damaged: \(reason); the log is intact: remove the store's index/ directory and the next open rebuilds it from the log"
        case let .idConflict(tenant, id, original):
            return "event id \(id) of tenant \(tenant) is already used by \(original) with other content; a resent event must be the same event (type, stream, time, actor, correlation id, data), a new event needs a new id"
        }
    }

    static func wrap(_ error: any Error) -> EventStoreError {
        if let error = error as? EventStoreError { return error }
        if let error = error as? LogError { return .log(error) }
        if let error = error as? KVError {
            switch error {
            case let .storage(underlying): return .log(underlying)
            case .corrupt: return .indexDamaged(error.description)
            default: return .invalidArgument("event index: \(error)")
            }
        }
        return .invalidArgument("unexpected error: \(error)")
    }
}
