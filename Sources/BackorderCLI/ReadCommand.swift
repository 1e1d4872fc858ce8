import ArgumentParser
import EventStore
import Foundation
import OutOfStock
import RecordsView

/// `backorder read`: stored events out, as the input contract's NDJSON (plus position,
/// version and recording time), in the order they were appended; with `--follow`, then the
/// events appended later, without gap or duplicate (docs/CONSUMERS.md).
struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Write stored events as NDJSON (what `append` takes back), oldest first; --follow for new ones.",
        discussion: """
        Events come out in the order they were appended (docs/CONSUMERS.md). --from and --to take a time \
        (RFC 3339 or YYYY-MM-DD: when the events were recorded) or one offset per partition, comma-separated \
        (the resume point `read` prints at the end). `backorder read --tenant T | backorder append - --data NEW` \
        copies a tenant.
        """)

    @OptionGroup var data: DataOptions
    @Option(help: "Only this tenant's events.") var tenant: String?
    @Option(help: "Only this stream (with --tenant), as stored: record/R-1, customer/C-1 or product/P-1.") var stream: String?
    @Option(help: "Only events of these types (comma-separated, or repeat the option).") var type: [String] = []
    @Option(help: "Start here: a time (events recorded at or after it) or one offset per partition.") var from: String?
    @Option(help: "Stop here: a time (events recorded before it) or one offset per partition (exclusive).") var to: String?
    @Option(help: "At most this many events.") var limit: Int?
    @Flag(help: "After the stored events, wait for new ones and write them as they come (until interrupted).") var follow = false
    @Option(help: "With --follow: the longest wait for new events, in milliseconds (on Linux the embedded log's writes wake the follower at once).") var pollMilliseconds = 20
    @Option(help: "ndjson (default) or table.") var format = "ndjson"

    func run() async throws {
        guard format == "ndjson" || format == "table" else { throw ValidationError("--format must be ndjson or table") }
        guard stream == nil || tenant != nil else { throw ValidationError("--stream needs --tenant (stream names are per tenant)") }
        guard limit.map({ $0 >= 0 }) ?? true else { throw ValidationError("--limit must be ≥ 0") }
        guard (1...60_000).contains(pollMilliseconds) else { throw ValidationError("--poll-milliseconds must be 1...60000") }
        guard !(follow && to != nil) else { throw ValidationError("--follow reads on without end; it cannot be given with --to") }
        let types = Set(type.flatMap { $0.split(separator: ",").map(String.init) })
        for name in types where EventType.all[name] == nil {
            throw ValidationError("--type: unknown event type \(name) (types: \(EventType.all.keys.sorted().joined(separator: ", ")))")
        }
        try await runQuery {
            let source = try await data.openSource(inRecordedOrder: true)
            let ends = try source.endOffsets()
            let start = try from.map { try Self.positions($0, option: "--from", source) } ?? Array(repeating: 0, count: ends.count)
            let stop = try to.map { try Self.positions($0, option: "--to", source) } ?? ends
            var reader = try RecordedOrderReader(source: source, from: start, to: stop)
            var output = StandardOutput()
            var written = 0, scanned = 0
            let began = MonotonicTime.now
            // The options are read once: an @Option's value is a property-wrapper call with a
            // generic metadata lookup, 9 % of a million-event read when made per event.
            let table = format == "table", limit = self.limit
            func write(_ event: StoredEvent) throws {
                try output.appendLine { line in
                    if table { Self.appendTableRow(event, to: &line) } else { try EventOutput.appendLine(event, to: &line) }
                }
                written += 1
            }
            let (tenant, stream) = (self.tenant, self.stream)
            let keep: @Sendable (StoredEvent) -> Bool = { event in
                (tenant.map { event.tenant == $0 } ?? true) && (stream.map { event.stream == $0 } ?? true) && (types.isEmpty || types.contains(event.type))
            }
            /// Writes what the reader has (read and decoded on another thread); false once
            /// --limit is reached, with the reader set after the last event written.
            func drain() throws -> Bool {
                guard limit.map({ written < $0 }) ?? true else { return false }
                let ahead = ReadAhead(reader, keep: keep)
                var positions = reader.positions
                do {
                    while let chunk = try ahead.next() {
                        for (event, lane) in zip(chunk.events, chunk.lanes) {
                            if let limit, written >= limit {
                                _ = ahead.finish()
                                scanned += ahead.scanned
                                reader = try RecordedOrderReader(source: source, from: positions, to: reader.ends)
                                return false
                            }
                            try write(event)
                            positions[lane] = event.position.offset + 1
                        }
                        positions = chunk.positions
                    }
                } catch {
                    _ = ahead.finish()
                    throw error
                }
                reader = ahead.finish()
                scanned += ahead.scanned
                return limit.map { written < $0 } ?? true
            }
            if table { try output.appendLine { $0.append(contentsOf: Self.tableHeader.utf8) } }
            var more: Bool
            if let tenant, let stream, let log = source as? EventReader, from == nil && to == nil {
                // One stream: found through the stream index and its back-links, not a scan.
                let history = try log.readStream(tenant: tenant, stream: stream)
                for event in history.events.prefix(limit ?? .max) where types.isEmpty || types.contains(event.type) { try write(event) }
                scanned = history.events.count
                reader = try RecordedOrderReader(source: source, from: ends, to: ends)
                more = limit.map { written < $0 } ?? true
            } else {
                more = try drain()
            }
            try output.flush()
            let waiting = follow ? FollowWait(source: source, milliseconds: pollMilliseconds) : nil
            while let waiting, more {
                try await waiting.next()
                reader.extend(to: try source.endOffsets())
                more = try drain()
                try output.flush()
            }
            let seconds = MonotonicTime.now.seconds(since: began)
            printError("read \(written) of \(scanned) events in \(String(format: "%.3f", seconds)) s; to go on from here: --from \(reader.positions.map(String.init).joined(separator: ","))")
        }
    }

    /// A time, or one offset per partition.
    static func positions(_ text: String, option: String, _ source: any EventSource) throws -> [Int64] {
        if let time = try? parseTime(text, option) { return try source.offsets(recordedAfter: time - 1) }
        let ends = try source.endOffsets()
        let offsets = text.split(separator: ",", omittingEmptySubsequences: false).map { Int64($0.trimmingCharacters(in: .whitespaces)) }
        guard offsets.count == source.partitionCount, offsets.allSatisfy({ $0 != nil }) else {
            throw QueryError(description: "\(option) \(text): give a time (RFC 3339 or YYYY-MM-DD) or \(source.partitionCount) offsets, one per partition, separated by commas")
        }
        let positions = offsets.map { $0 ?? 0 }
        for (partition, offset) in positions.enumerated() where offset < 0 || offset > ends[partition] {
            throw QueryError(description: "\(option): offset \(offset) is outside partition \(partition), which holds offsets 0..<\(ends[partition])")
        }
        return positions
    }

    static let tableHeader = "POSITION     RECORDED                  TENANT      STREAM                VERSION  TYPE                  ACTOR"

    static func appendTableRow(_ event: StoredEvent, to line: inout [UInt8]) {
        func column(_ text: String, _ width: Int) {
            line.append(contentsOf: text.utf8)
            line.append(contentsOf: repeatElement(UInt8(ascii: " "), count: max(1, width - text.count + 1)))
        }
        column(event.position.description, 12)
        column(Timestamp.format(event.recordedTime), 25)
        column(event.tenant, 11)
        column(event.stream, 21)
        column(String(event.streamVersion), 8)
        column(event.type, 21)
        line.append(contentsOf: event.actor.utf8)
    }
}
