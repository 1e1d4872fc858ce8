import EventLog

/// Where an event is stored: its partition and its offset there.
public struct Position: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The log partition.
    public let partition: Int
    /// The offset in the partition.
    public let offset: Int64

    /// A position.
    public init(partition: Int, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    /// Ordered by partition, then offset.
    public static func < (a: Position, b: Position) -> Bool {
        (a.partition, a.offset) < (b.partition, b.offset)
    }

    public var description: String { "\(partition):\(offset)" }
}

/// What a stream's version must be for an append to go ahead (optimistic concurrency).
public enum ExpectedVersion: Sendable, Equatable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must have at least one event.
    case exists
    /// The stream's current version must be exactly this (0 = no stream).
    case exact(Int64)

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .exists: "an existing stream"
        case let .exact(n): "version \(n)"
        }
    }

    /// Whether a stream at version `current` passes the check.
    public func admits(_ current: Int64) -> Bool {
        switch self {
        case .any: true
        case .noStream: current == 0
        case .exists: current > 0
        case let .exact(n): current == n
        }
    }
}

/// An event to append. The store assigns its stream version and position.
public struct NewEvent: Sendable, Equatable {
    /// Idempotency key.
    public var id: EventID
    /// Event type name, e.g. `OutOfStockReported`.
    public var type: String
    /// Version of the type's schema the data is encoded with.
    public var schemaVersion: Int
    /// Tenant; tenants never see each other's streams.
    public var tenant: String
    /// Stream id within the tenant (a record, customer or product id).
    public var stream: String
    /// Business time: when it happened, µs since the Unix epoch.
    public var businessTime: Int64
    /// Who did it.
    public var actor: String
    /// Ties the events of one batch operation together.
    public var correlationId: String?
    /// The type's data, in the domain's binary encoding.
    public var data: [UInt8]
    /// The check made against the stream's version before this event.
    public var expectedVersion: ExpectedVersion

    /// An event to append.
    public init(id: EventID, type: String, schemaVersion: Int = 1, tenant: String, stream: String, businessTime: Int64,
                actor: String, correlationId: String? = nil, data: [UInt8], expectedVersion: ExpectedVersion = .any) {
        self.id = id
        self.type = type
        self.schemaVersion = schemaVersion
        self.tenant = tenant
        self.stream = stream
        self.businessTime = businessTime
        self.actor = actor
        self.correlationId = correlationId
        self.data = data
        self.expectedVersion = expectedVersion
    }
}

/// An event as stored: the envelope of docs/EVENTS.md plus its place in the log.
public struct StoredEvent: Sendable, Equatable {
    /// Idempotency key.
    public var id: EventID
    /// Event type name.
    public var type: String
    /// Schema version of `data`.
    public var schemaVersion: Int
    /// Tenant.
    public var tenant: String
    /// Stream id within the tenant.
    public var stream: String
    /// 1 for the stream's first event, then 2, 3, …
    public var streamVersion: Int64
    /// When it happened (µs since the epoch).
    public var businessTime: Int64
    /// When it was appended (µs since the epoch): the log record's timestamp.
    public var recordedTime: Int64
    /// Who did it.
    public var actor: String
    /// Batch operation id, if any.
    public var correlationId: String?
    /// The domain's encoded data.
    public var data: [UInt8]
    /// Where it is stored.
    public var position: Position
    /// Offset of the stream's previous event in the same partition (nil for the first).
    public var previousOffset: Int64?
}

extension NewEvent {
    /// Whether `other` is this event sent again: everything but the expected version (a
    /// retry may state it differently) is equal.
    public func isResend(of other: NewEvent) -> Bool {
        id == other.id && type == other.type && schemaVersion == other.schemaVersion && tenant == other.tenant
            && stream == other.stream && businessTime == other.businessTime && actor == other.actor
            && (correlationId ?? "") == (other.correlationId ?? "") && data == other.data
    }

    /// Whether this event, appended again, is the stored event `stored`.
    public func isResend(of stored: StoredEvent) -> Bool {
        id == stored.id && type == stored.type && schemaVersion == stored.schemaVersion && tenant == stored.tenant
            && stream == stored.stream && businessTime == stored.businessTime && actor == stored.actor
            && (correlationId ?? "") == (stored.correlationId ?? "") && data == stored.data
    }
}
