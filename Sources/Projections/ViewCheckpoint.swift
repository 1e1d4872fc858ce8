import EventLog
import EventStore

/// What a view's rows reflect, committed with them (the key-value store's metadata): the
/// view and its version, the history it was built from, and for each lane the next offset
/// to apply and the id of the last event applied.
public struct ViewCheckpoint: Sendable, Equatable {
    public var viewName: String
    public var viewVersion: Int
    /// The source's identity (a log's id; a JetStream stream's name and creation time).
    public var sourceID: String
    /// Per lane, the offset of the next event to apply.
    public var positions: [Int64]
    /// Per lane, the id of the last event applied (nil: none).
    public var lastEventIDs: [EventID?]
    /// Events applied since the view was empty.
    public var eventsApplied: Int64
    /// Per lane, the source's mark of its history up to the position (`historyMark`), when
    /// it has one: checked instead of reading the event before the position.
    public var historyMarks: [[UInt8]?]

    /// An empty view's checkpoint.
    public init(viewName: String, viewVersion: Int, sourceID: String, lanes: Int) {
        self.viewName = viewName
        self.viewVersion = viewVersion
        self.sourceID = sourceID
        positions = Array(repeating: 0, count: lanes)
        lastEventIDs = Array(repeating: nil, count: lanes)
        eventsApplied = 0
        historyMarks = Array(repeating: nil, count: lanes)
    }

    static let magic: UInt32 = 0x4B43_5642 // "BVCK"

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: Self.magic.littleEndian) { out.append(contentsOf: $0) }
        ByteCoding.appendString(viewName, to: &out)
        ByteCoding.appendVarint(UInt64(viewVersion), to: &out)
        ByteCoding.appendString(sourceID, to: &out)
        ByteCoding.appendVarint(UInt64(positions.count), to: &out)
        for (position, id) in zip(positions, lastEventIDs) {
            ByteCoding.appendVarint(UInt64(position), to: &out)
            if let id {
                out.append(1)
                for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: id.high >> UInt64(shift))) }
                for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: id.low >> UInt64(shift))) }
            } else {
                out.append(0)
            }
        }
        ByteCoding.appendVarint(UInt64(eventsApplied), to: &out)
        for mark in historyMarks {
            ByteCoding.appendVarint(UInt64(mark?.count ?? 0), to: &out)
            if let mark { out.append(contentsOf: mark) }
        }
        return out
    }

    /// Decodes a checkpoint; nil for bytes that are not one (an empty store's metadata).
    public init?(decoding bytes: [UInt8]) {
        let decoded: ViewCheckpoint? = bytes.withUnsafeBytes { raw in
            var r = ByteReader(bytes: raw)
            guard r.littleEndian(UInt32.self) == Self.magic, let name = r.string(), let version = r.varint(), let source = r.string(),
                  let lanes = r.varint(), lanes <= UInt64(Limits.maxPartitions) else { return nil }
            var checkpoint = ViewCheckpoint(viewName: name, viewVersion: Int(clamping: version), sourceID: source, lanes: Int(lanes))
            for lane in 0..<Int(lanes) {
                guard let position = r.varint(), position <= UInt64(Int64.max), let flag = r.byte() else { return nil }
                checkpoint.positions[lane] = Int64(position)
                if flag == 1 {
                    guard let high = r.bigEndian(), let low = r.bigEndian() else { return nil }
                    checkpoint.lastEventIDs[lane] = EventID(high: high, low: low)
                } else if flag != 0 {
                    return nil
                }
            }
            guard let applied = r.varint(), applied <= UInt64(Int64.max) else { return nil }
            checkpoint.eventsApplied = Int64(applied)
            for lane in 0..<Int(lanes) {
                guard let n = r.varint(), n <= 64, n <= UInt64(raw.count - r.position) else { return nil }
                if n > 0 { checkpoint.historyMarks[lane] = Array(raw[r.position..<(r.position + Int(n))]) }
                r.position += Int(n)
            }
            guard r.position == raw.count else { return nil }
            return checkpoint
        }
        guard let decoded else { return nil }
        self = decoded
    }

    /// Events in the source after the checkpoint (nil when it does not fit the source).
    public func eventsBehind(_ ends: [Int64]) -> Int64? {
        guard positions.count == ends.count, zip(positions, ends).allSatisfy({ $0 <= $1 }) else { return nil }
        return zip(ends, positions).reduce(0) { $0 + ($1.0 - $1.1) }
    }

    /// Why this checkpoint cannot be continued from `source` (another view version,
    /// another history, ahead of the log, or a last event that is not the log's), or nil.
    public func mismatch(with source: any EventSource, viewName: String, viewVersion: Int, ends: [Int64]) -> String? {
        guard self.viewName == viewName else { return "it holds view \(self.viewName), not \(viewName)" }
        guard self.viewVersion == viewVersion else { return "it is version \(self.viewVersion) of the view; this build writes version \(viewVersion)" }
        guard sourceID == (source.sourceID ?? "") else { return "it was made from another log (\(sourceID))" }
        guard positions.count == ends.count else { return "it has \(positions.count) lanes; the log has \(ends.count)" }
        for lane in positions.indices {
            guard positions[lane] <= ends[lane] else { return "lane \(lane): it is at offset \(positions[lane]), past the log's end \(ends[lane])" }
            guard positions[lane] > 0 else { continue }
            if let mark = historyMarks[lane], let now = try? source.historyMark(lane: lane, at: positions[lane]) {
                guard mark == now else { return "lane \(lane): the log's history up to offset \(positions[lane]) is not the one it applied (the log's history changed)" }
                continue
            }
            let last = try? source.readEvent(at: Position(partition: lane, offset: positions[lane] - 1))
            guard let last, last.id == lastEventIDs[lane] else {
                return "lane \(lane): the event before offset \(positions[lane]) is not the one it applied (the log's history changed)"
            }
        }
        return nil
    }

    /// Records the source's history marks at the positions (before a commit).
    public mutating func markHistory(_ source: any EventSource) {
        for lane in positions.indices { historyMarks[lane] = positions[lane] > 0 ? (try? source.historyMark(lane: lane, at: positions[lane])) ?? nil : nil }
    }

    /// Notes one event of `lane` as applied; it must be the lane's next. (The lane is given:
    /// an event's position names its partition, which is its lane only on the embedded log.)
    public mutating func advance(lane: Int, past event: RawEvent) {
        precondition(event.position.offset == positions[lane], "view \(viewName): lane \(lane) applied offset \(event.position.offset) where \(positions[lane]) was next")
        positions[lane] = event.position.offset + 1
        lastEventIDs[lane] = event.id
        eventsApplied += 1
    }
}
