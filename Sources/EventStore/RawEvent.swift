import EventLog

/// A stored event read in place: its fields borrowed from the batch being read, valid only
/// inside the closure that receives it (`EventCursor.nextBatch(_:)`). Views read events
/// this way: no allocation per event, no strings they do not need.
public struct RawEvent {
    /// Where it is stored.
    public let position: Position
    /// When it was appended (µs since the epoch).
    public let recordedTime: Int64
    /// Tenant and stream id (UTF-8).
    public let tenant: UnsafeRawBufferPointer
    public let stream: UnsafeRawBufferPointer
    /// Idempotency key.
    public let id: EventID
    /// Offset of the stream's previous event in the same lane (nil: the first).
    public let previousOffset: Int64?
    /// 1 for the stream's first event, then 2, 3, …
    public let streamVersion: Int64
    /// When it happened (µs since the epoch).
    public let businessTime: Int64
    /// Schema version of `data`.
    public let schemaVersion: Int
    /// Type name, actor and correlation id (empty: none), UTF-8.
    public let type: UnsafeRawBufferPointer
    public let actor: UnsafeRawBufferPointer
    public let correlationId: UnsafeRawBufferPointer
    /// The domain's encoded data.
    public let data: UnsafeRawBufferPointer

    /// Decodes a log record in place; throws `.malformedEvent` naming its position.
    static func decode(_ record: RecordView, partition: Int) throws -> RawEvent {
        let position = Position(partition: partition, offset: record.offset)
        guard let separator = record.key.firstIndex(of: 0) else { throw EventStoreError.malformedEvent(position, "record key has no tenant separator") }
        var reader = ByteReader(bytes: record.value)
        guard reader.byte() == EnvelopeCodec.version else { throw EventStoreError.malformedEvent(position, "unknown envelope version") }
        guard let high = reader.bigEndian(), let low = reader.bigEndian(), let previous = reader.varint(), let streamVersion = reader.varint(),
              let time = reader.varint(), let schemaVersion = reader.varint(), let type = slice(&reader), let actor = slice(&reader),
              let correlation = slice(&reader) else {
            throw EventStoreError.malformedEvent(position, "truncated envelope")
        }
        return RawEvent(
            position: position, recordedTime: record.timestamp,
            tenant: UnsafeRawBufferPointer(rebasing: record.key[..<separator]),
            stream: UnsafeRawBufferPointer(rebasing: record.key[(separator + 1)...]),
            id: EventID(high: high, low: low), previousOffset: previous == 0 ? nil : Int64(truncatingIfNeeded: previous - 1),
            streamVersion: Int64(truncatingIfNeeded: streamVersion), businessTime: ByteCoding.unZigZag(time),
            schemaVersion: Int(truncatingIfNeeded: schemaVersion), type: type, actor: actor, correlationId: correlation,
            data: UnsafeRawBufferPointer(rebasing: record.value[reader.position...]))
    }

    private static func slice(_ reader: inout ByteReader) -> UnsafeRawBufferPointer? {
        guard let length = reader.varint(), length <= UInt64(reader.bytes.count - reader.position) else { return nil }
        defer { reader.position += Int(length) }
        return UnsafeRawBufferPointer(rebasing: reader.bytes[reader.position..<(reader.position + Int(length))])
    }

    /// A stored event's fields lent as a raw event (for back ends that deliver `StoredEvent`s).
    static func withRaw<R>(_ e: StoredEvent, _ body: (RawEvent) throws -> R) rethrows -> R {
        var tenant = e.tenant, stream = e.stream, type = e.type, actor = e.actor, correlation = e.correlationId ?? ""
        return try tenant.withUTF8 { t in
            try stream.withUTF8 { s in
                try type.withUTF8 { ty in
                    try actor.withUTF8 { a in
                        try correlation.withUTF8 { c in
                            try e.data.withUnsafeBytes { d in
                                try body(RawEvent(position: e.position, recordedTime: e.recordedTime, tenant: UnsafeRawBufferPointer(t),
                                                  stream: UnsafeRawBufferPointer(s), id: e.id, previousOffset: e.previousOffset,
                                                  streamVersion: e.streamVersion, businessTime: e.businessTime, schemaVersion: e.schemaVersion,
                                                  type: UnsafeRawBufferPointer(ty), actor: UnsafeRawBufferPointer(a),
                                                  correlationId: UnsafeRawBufferPointer(c), data: d))
                            }
                        }
                    }
                }
            }
        }
    }
}

extension EventCursor {
    /// Calls `body` with each event of the next batch, read in place; false at the end.
    /// (Events before the cursor's start offset are skipped.)
    public mutating func nextBatch(_ body: (RawEvent) throws -> Void) throws -> Bool {
        try nextBatchRaw(body)
    }
}
