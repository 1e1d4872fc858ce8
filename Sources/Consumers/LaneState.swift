import EventLog

/// A consumer group's progress in one lane (docs/CONSUMERS.md, "Checkpoints"): the
/// checkpoint — every event below it is acknowledged or parked — the parked events, and the
/// parked events sent back for another delivery. On one machine, one file per lane,
/// `consumers/<group>/lane-NNNN.state`, replaced whole and atomically (written to
/// `.tmp`, fsynced, renamed, directory fsynced), so a kill -9 leaves the old state or the
/// new one, never a mix; on a cluster, the value of the lane's key (`ClusterConsumerGroup`).
///
/// Layout (integers little-endian; strings: varint length + UTF-8):
///
/// | field | encoding |
/// |---|---|
/// | magic | 8 bytes `BOLANE01` |
/// | lane | u32 |
/// | checkpoint | i64: the next offset to deliver |
/// | parked | varint count; each: offset (i64), deliveries (varint), reason (string) |
/// | replay | varint count; each: offset (i64) — parked events to deliver again first |
/// | checksum | u32 CRC32C of everything before it |
public struct LaneState: Equatable, Sendable {
    /// An event given up on after `--max-deliver` failed deliveries.
    public struct Parked: Equatable, Sendable {
        public var offset: Int64
        public var deliveries: Int
        public var reason: String

        public init(offset: Int64, deliveries: Int, reason: String) {
            self.offset = offset
            self.deliveries = deliveries
            self.reason = reason
        }
    }

    public var lane: Int
    public var checkpoint: Int64
    public var parked: [Parked] = []
    public var replay: [Int64] = []

    static let magic = Array("BOLANE01".utf8)

    /// Why a state file does not decode.
    public struct Damage: Error {
        public let reason: String
    }
    /// Parked events kept per lane; more is a broken consumer, and a clear error.
    public static let maxParked = 100_000

    public init(lane: Int, checkpoint: Int64) {
        self.lane = lane
        self.checkpoint = checkpoint
    }

    public func encoded() -> [UInt8] {
        var out = Self.magic
        append(UInt32(lane), &out)
        append(UInt64(bitPattern: checkpoint), &out)
        ByteCoding.appendVarint(UInt64(parked.count), to: &out)
        for entry in parked {
            append(UInt64(bitPattern: entry.offset), &out)
            ByteCoding.appendVarint(UInt64(entry.deliveries), to: &out)
            ByteCoding.appendString(entry.reason, to: &out)
        }
        ByteCoding.appendVarint(UInt64(replay.count), to: &out)
        for offset in replay { append(UInt64(bitPattern: offset), &out) }
        append(CRC32C.checksum(out), &out)
        return out
    }

    /// Decodes a state file; the error names what is wrong (the caller names the file).
    public static func decode(_ bytes: [UInt8]) -> Result<LaneState, Damage> {
        guard bytes.count >= Self.magic.count + 4 + 8 + 2 + 4 else { return .failure(Damage(reason: "\(bytes.count) bytes, shorter than any state")) }
        guard bytes.starts(with: Self.magic) else { return .failure(Damage(reason: "no BOLANE01 magic at offset 0")) }
        let body = bytes[..<(bytes.count - 4)]
        let stored = bytes[(bytes.count - 4)...].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        guard CRC32C.checksum(body) == UInt32(littleEndian: stored) else { return .failure(Damage(reason: "checksum mismatch (CRC32C at offset \(bytes.count - 4))")) }
        return Array(body).withUnsafeBytes { raw -> Result<LaneState, Damage> in
            var reader = ByteReader(bytes: raw)
            reader.position = Self.magic.count
            guard let lane = reader.littleEndian(UInt32.self), let checkpoint = reader.littleEndian(UInt64.self),
                  let parkedCount = reader.varint(), parkedCount <= UInt64(Self.maxParked) else { return .failure(Damage(reason: "truncated header")) }
            var state = LaneState(lane: Int(lane), checkpoint: Int64(bitPattern: checkpoint))
            for _ in 0..<parkedCount {
                guard let offset = reader.littleEndian(UInt64.self), let deliveries = reader.varint(), let reason = reader.string() else {
                    return .failure(Damage(reason: "truncated parked entry at offset \(reader.position)"))
                }
                state.parked.append(Parked(offset: Int64(bitPattern: offset), deliveries: Int(truncatingIfNeeded: deliveries), reason: reason))
            }
            guard let replayCount = reader.varint(), replayCount <= UInt64(Self.maxParked) else { return .failure(Damage(reason: "truncated replay count")) }
            for _ in 0..<replayCount {
                guard let offset = reader.littleEndian(UInt64.self) else { return .failure(Damage(reason: "truncated replay entry at offset \(reader.position)")) }
                state.replay.append(Int64(bitPattern: offset))
            }
            guard reader.position == raw.count else { return .failure(Damage(reason: "\(raw.count - reader.position) bytes after the replay list")) }
            guard state.checkpoint >= 0 else { return .failure(Damage(reason: "negative checkpoint \(state.checkpoint)")) }
            return .success(state)
        }
    }

    private func append<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}
