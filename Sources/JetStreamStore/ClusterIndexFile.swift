import EventLog
import EventStore
import Foundation

/// The id cache of a JetStream store (docs/CLUSTER.md, "Event ids and idempotency"): what a
/// writer knew of the stream's ids and heads up to a sequence, saved in a local file so
/// that the next writer reads only the messages after it instead of the whole stream.
/// A cache, never the truth: a missing, damaged or foreign file (another stream, or one
/// deleted and created again) is ignored and the stream read from the start.
///
/// Layout (integers little-endian; varints LEB128):
///
/// | field | encoding |
/// |---|---|
/// | magic | 8 bytes `BOIDCACH` |
/// | version | u32, = 3 (version 1 files could lose a stream's head; version 2 keyed ids without their tenant: neither is read) |
/// | source id | varint length + UTF-8 (`jetstream:<stream>:<created ns>`) |
/// | through | u64: every message up to this sequence is in the file |
/// | last id | 1 byte (1: present) + two u64: the event id of message `through`, checked at open |
/// | heads | varint count; each: tenant, stream (varint length + UTF-8), version, sequence (varints) |
/// | ids | varint count; each: id scoped by its tenant (`ScopedID`, two u64), sequence, version, partition (varints) |
/// | checksum | u32 CRC32C of everything before it |
enum ClusterIndexFile {
    static let magic = Array("BOIDCACH".utf8)
    static let version: UInt32 = 3
    static let fileName = "ids.cache"
    /// The largest file read (about 50,000,000 ids): a larger one is ignored like a damaged
    /// one, and the stream read instead.
    static let maxBytes: Int64 = 2 << 30

    struct Contents {
        var sourceID: String
        var through: UInt64
        /// The event id of message `through` (nil when `through` is 0): a stream whose
        /// message there is another (events lost and others written since) is not the
        /// history the file describes.
        var lastEventID: EventID?
        var heads: [StreamKey: ClusterIndex.Head]
        var ids: [ScopedID: ClusterIndex.Entry]
    }

    static func encode(_ contents: Contents) -> [UInt8] {
        var out = magic
        fixed(version, &out)
        string(contents.sourceID, &out)
        fixed(contents.through, &out)
        if let id = contents.lastEventID {
            out.append(1)
            fixed(id.high, &out)
            fixed(id.low, &out)
        } else {
            out.append(0)
        }
        varint(UInt64(contents.heads.count), &out)
        for (key, head) in contents.heads {
            string(key.tenant, &out)
            string(key.stream, &out)
            varint(UInt64(head.version), &out)
            varint(head.sequence, &out)
        }
        varint(UInt64(contents.ids.count), &out)
        for (id, entry) in contents.ids {
            fixed(id.high, &out)
            fixed(id.low, &out)
            varint(entry.sequence, &out)
            varint(UInt64(entry.version), &out)
            varint(UInt64(entry.partition), &out)
        }
        fixed(CRC32C.checksum(out), &out)
        return out
    }

    /// The contents, or why the bytes are not a usable cache.
    static func decode(_ bytes: [UInt8]) -> Result<Contents, CacheError> {
        guard bytes.count >= magic.count + 8, Array(bytes.prefix(magic.count)) == magic else { return .failure(.init("not an id cache")) }
        return bytes.withUnsafeBytes { all in
            let body = UnsafeRawBufferPointer(rebasing: all[..<(all.count - 4)])
            var trailer = ByteReader(bytes: UnsafeRawBufferPointer(rebasing: all[(all.count - 4)...]))
            guard CRC32C.checksum(body) == trailer.littleEndian(UInt32.self) else { return .failure(.init("checksum mismatch")) }
            var reader = ByteReader(bytes: body)
            reader.position = magic.count
            guard reader.littleEndian(UInt32.self) == version else { return .failure(.init("unknown version")) }
            return decodeBody(&reader)
        }
    }

    private static func decodeBody(_ reader: inout ByteReader) -> Result<Contents, CacheError> {
        guard let sourceID = reader.string(), let through = reader.littleEndian(UInt64.self), let hasID = reader.byte(), hasID <= 1 else {
            return .failure(.init("truncated header"))
        }
        var lastEventID: EventID?
        if hasID == 1 {
            guard let high = reader.littleEndian(UInt64.self), let low = reader.littleEndian(UInt64.self) else { return .failure(.init("truncated header")) }
            lastEventID = EventID(high: high, low: low)
        }
        guard let headCount = reader.varint() else { return .failure(.init("truncated header")) }
        var heads: [StreamKey: ClusterIndex.Head] = [:]
        heads.reserveCapacity(Int(min(headCount, 1 << 24)))
        for _ in 0..<headCount {
            guard let tenant = reader.string(), let stream = reader.string(), let version = reader.varint(), let sequence = reader.varint() else {
                return .failure(.init("truncated stream heads"))
            }
            guard (1...UInt64(Int64.max)).contains(version), sequence >= 1, sequence <= through else {
                return .failure(.init("a stream head outside 1...\(through)"))
            }
            heads[StreamKey(tenant: tenant, stream: stream)] = .init(version: Int64(truncatingIfNeeded: version), sequence: sequence)
        }
        guard let idCount = reader.varint() else { return .failure(.init("truncated id count")) }
        var ids: [ScopedID: ClusterIndex.Entry] = [:]
        ids.reserveCapacity(Int(min(idCount, 1 << 26)))
        for _ in 0..<idCount {
            guard let high = reader.littleEndian(UInt64.self), let low = reader.littleEndian(UInt64.self), let sequence = reader.varint(),
                  let version = reader.varint(), let partition = reader.varint(), partition < Limits.maxPartitions else {
                return .failure(.init("truncated ids"))
            }
            guard (1...UInt64(Int64.max)).contains(version), sequence >= 1, sequence <= through else {
                return .failure(.init("an id outside 1...\(through)"))
            }
            ids[ScopedID(high: high, low: low)] = .init(sequence: sequence, version: Int64(truncatingIfNeeded: version), partition: Int(partition))
        }
        guard reader.position == reader.bytes.count else { return .failure(.init("bytes after the ids")) }
        return .success(Contents(sourceID: sourceID, through: through, lastEventID: lastEventID, heads: heads, ids: ids))
    }

    struct CacheError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private static func fixed<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func varint(_ value: UInt64, _ out: inout [UInt8]) { ByteCoding.appendVarint(value, to: &out) }

    private static func string(_ text: String, _ out: inout [UInt8]) { ByteCoding.appendString(text, to: &out) }
}
