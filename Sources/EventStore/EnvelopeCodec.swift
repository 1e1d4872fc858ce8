import EventLog

/// The binary form of an event in a log record (docs/EVENTS.md, "Stored event").
///
/// Record key: `tenant 0x00 stream` (UTF-8), which is also the partition key. Record
/// value, all varints LEB128:
///
/// | field | encoding |
/// |---|---|
/// | envelope version | 1 byte, = 1 |
/// | event id | 16 bytes, big-endian halves |
/// | previous offset + 1 | varint (0: first event of the stream) |
/// | stream version | varint |
/// | business time | zigzag varint, µs since the epoch |
/// | schema version | varint |
/// | type, actor, correlation id | varint length + UTF-8 each (empty correlation id: none) |
/// | data | the rest of the value |
enum EnvelopeCodec {
    static let version: UInt8 = 1

    static func key(tenant: String, stream: String) -> [UInt8] {
        var key = Array(tenant.utf8)
        key.append(0)
        key.append(contentsOf: stream.utf8)
        return key
    }

    /// An upper bound of the record's size (key, value and record framing).
    static func encodedSizeBound(_ event: NewEvent) -> Int {
        64 + 2 * event.tenant.utf8.count + event.stream.utf8.count + event.type.utf8.count + event.actor.utf8.count
            + (event.correlationId?.utf8.count ?? 0) + event.data.count
    }

    static func encode(_ event: NewEvent, streamVersion: Int64, previousOffset: Int64?, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(version)
        appendBigEndian(event.id.high, &out)
        appendBigEndian(event.id.low, &out)
        appendVarint(UInt64(previousOffset.map { $0 + 1 } ?? 0), &out)
        appendVarint(UInt64(streamVersion), &out)
        appendVarint(ByteCoding.zigZag(event.businessTime), &out)
        appendVarint(UInt64(event.schemaVersion), &out)
        appendString(event.type, &out)
        appendString(event.actor, &out)
        appendString(event.correlationId ?? "", &out)
        out.append(contentsOf: event.data)
    }

    /// Decodes a record into a stored event; throws `.malformedEvent` naming the position.
    static func decode(_ record: RecordView, partition: Int) throws -> StoredEvent {
        let position = Position(partition: partition, offset: record.offset)
        guard let separator = record.key.firstIndex(of: 0) else { throw EventStoreError.malformedEvent(position, "record key has no tenant separator") }
        let tenant = String(decoding: record.key[..<separator], as: UTF8.self)
        let stream = String(decoding: record.key[(separator + 1)...], as: UTF8.self)
        return try decode(tenant: tenant, stream: stream, value: record.value, position: position, recordedTime: record.timestamp)
    }

    /// Decodes an envelope value whose tenant and stream are known.
    static func decode(tenant: String, stream: String, value: UnsafeRawBufferPointer, position: Position, recordedTime: Int64) throws -> StoredEvent {
        var reader = Reader(bytes: value)
        guard reader.byte() == version else { throw EventStoreError.malformedEvent(position, "unknown envelope version") }
        guard let high = reader.bigEndian(), let low = reader.bigEndian(),
              let previous = reader.varint(), let streamVersion = reader.varint(), let time = reader.varint(),
              let schemaVersion = reader.varint(), let type = reader.string(), let actor = reader.string(),
              let correlation = reader.string() else {
            throw EventStoreError.malformedEvent(position, "truncated envelope")
        }
        return StoredEvent(
            id: EventID(high: high, low: low), type: type, schemaVersion: Int(truncatingIfNeeded: schemaVersion),
            tenant: tenant, stream: stream, streamVersion: Int64(truncatingIfNeeded: streamVersion),
            businessTime: ByteCoding.unZigZag(time),
            recordedTime: recordedTime, actor: actor, correlationId: correlation.isEmpty ? nil : correlation,
            data: Array(value[reader.position...]), position: position,
            previousOffset: previous == 0 ? nil : Int64(truncatingIfNeeded: previous - 1))
    }

    /// The fields the indexes need, without allocating: the id scoped by the tenant, the
    /// stream key's hash and the version.
    static func indexFields(_ record: RecordView) -> (id: ScopedID, stream: StreamHash, version: Int64)? {
        var reader = Reader(bytes: record.value)
        guard let separator = record.key.firstIndex(of: 0), reader.byte() == version, let high = reader.bigEndian(),
              let low = reader.bigEndian(), reader.varint() != nil, let streamVersion = reader.varint() else { return nil }
        let tenant = UnsafeRawBufferPointer(rebasing: record.key[..<separator])
        return (ScopedID(tenant: tenant, id: EventID(high: high, low: low)), StreamHash(key: record.key), Int64(truncatingIfNeeded: streamVersion))
    }

    private static func appendBigEndian(_ value: UInt64, _ out: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private static func appendVarint(_ value: UInt64, _ out: inout [UInt8]) { ByteCoding.appendVarint(value, to: &out) }

    private static func appendString(_ text: String, _ out: inout [UInt8]) { ByteCoding.appendString(text, to: &out) }

    /// A bounds-checked reader over a record's bytes.
    typealias Reader = ByteReader
}

/// A 128-bit hash of a stream's key (tenant and stream id): the key of the stream index.
/// Two independent 64-bit hashes; a collision would also have to match the stream name
/// stored in the event the index points at, which readers check.
struct StreamHash: Hashable, Sendable {
    let k0: UInt64
    let k1: UInt64

    init<Key: Collection<UInt8>>(key: Key) {
        var a: UInt64 = 0x243F_6A88_85A3_08D3, b: UInt64 = 0x1319_8A2E_0370_7344
        var word: UInt64 = 0, n = 0
        for byte in key {
            word |= UInt64(byte) << UInt64(8 * (n & 7))
            n += 1
            if n & 7 == 0 {
                a = StreamHash.mix(a ^ word)
                b = StreamHash.mix(b &+ word &* 0x9E37_79B9_7F4A_7C15)
                word = 0
            }
        }
        a = StreamHash.mix(a ^ word ^ UInt64(n))
        b = StreamHash.mix(b &+ (word ^ UInt64(n)) &* 0x9E37_79B9_7F4A_7C15)
        k0 = a
        k1 = b
    }

    init(tenant: String, stream: String) { self.init(key: EnvelopeCodec.key(tenant: tenant, stream: stream)) }

    /// The SplitMix64 finalizer, part of the stream hash's definition (hashes are stored).
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 { SplitMix.finalize(x) }
}

/// The stored form of one event — the envelope value of docs/EVENTS.md — for back ends
/// other than the embedded log, which store it unchanged (a JetStream message's payload).
/// The tenant and stream travel beside it (the log record's key, the message's subject).
public enum EventEnvelope {
    /// Largest envelope a back end must accept.
    public static let maxBytes = AppendPlan.maxEventBytes

    /// A stream's record key, `tenant 0x00 stream`: what its partition is hashed from, in
    /// every back end (so a stream has the same partition everywhere).
    public static func key(tenant: String, stream: String) -> [UInt8] { EnvelopeCodec.key(tenant: tenant, stream: stream) }

    /// The envelope of `event` as version `streamVersion` of its stream, linked to the
    /// stream's previous event at `previousOffset` (nil: the first).
    public static func encode(_ event: NewEvent, streamVersion: Int64, previousOffset: Int64?) -> [UInt8] {
        var out: [UInt8] = []
        EnvelopeCodec.encode(event, streamVersion: streamVersion, previousOffset: previousOffset, into: &out)
        return out
    }

    /// An upper bound of the envelope's size (with the tenant and stream).
    public static func sizeBound(_ event: NewEvent) -> Int { EnvelopeCodec.encodedSizeBound(event) }

    /// Decodes an envelope stored at `position`; throws `.malformedEvent` naming it.
    public static func decode(tenant: String, stream: String, value: [UInt8], position: Position, recordedTime: Int64) throws -> StoredEvent {
        try value.withUnsafeBytes { try EnvelopeCodec.decode(tenant: tenant, stream: stream, value: $0, position: position, recordedTime: recordedTime) }
    }
}
