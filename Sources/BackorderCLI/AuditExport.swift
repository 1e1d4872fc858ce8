import ArgumentParser
import EventStore
import Foundation
import OutOfStock
import RecordsView

/// `backorder audit export`: matching events as NDJSON or CSV, streamed in constant memory.
struct AuditExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Stream matching events, oldest recorded first, as NDJSON or CSV (to stdout or --out).")
    @OptionGroup var data: DataOptions
    @Option(help: "ndjson or csv.") var format = "ndjson"
    @Option(help: "Only events that happened (their `at`) at or after this time (RFC 3339 or YYYY-MM-DD).") var from: String?
    @Option(help: "Only events that happened before this time (exclusive).") var to: String?
    @Option(help: "Only events by this actor.") var actor: String?
    @Option(help: "Only this customer's stream and the streams of records that named this customer.") var customer: String?
    @Option(help: "Only events of this type (repeat or separate with commas for several).") var type: [String] = []
    @Option(help: "Only this tenant.") var tenant: String?
    @Option(help: "Write to this file instead of standard output.") var out: String?

    func run() async throws {
        guard format == "ndjson" || format == "csv" else { throw ValidationError("--format must be ndjson or csv") }
        var filter = ExportFilter()
        filter.from = try from.map { try parseTime($0, "--from") }
        filter.to = try to.map { try parseTime($0, "--to") }
        filter.actor = actor
        filter.tenant = tenant
        filter.types = Set(type.flatMap { $0.split(separator: ",").map(String.init) })
        for name in filter.types where EventType.all[name] == nil {
            throw ValidationError("--type: unknown event type \(name) (types: \(EventType.all.keys.sorted().joined(separator: ", ")))")
        }
        try await runQuery {
            let reader = try await data.openSource(inRecordedOrder: true)
            if let customer {
                // Events after a request's first one name only the record: find the
                // customer's records first (memory: that customer's record ids).
                var streams: Set<ExportFilter.StreamKey> = []
                try forEachEventInRecordedOrder(reader) { event in
                    guard filter.tenant == nil || event.tenant == filter.tenant else { return }
                    if event.stream == StreamName.customer(customer) {
                        streams.insert(ExportFilter.StreamKey(tenant: event.tenant, stream: event.stream))
                    } else if event.type == "OutOfStockReported" || event.type == "OutOfStockAmended",
                              let decoded = try? EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion),
                              decoded.string(.customerId) == customer {
                        streams.insert(ExportFilter.StreamKey(tenant: event.tenant, stream: event.stream))
                    }
                }
                filter.streams = streams
            }
            let sink = try OutputSink(path: out)
            if format == "csv" { sink.write(ExportRow.csvHeader) }
            var exported = 0, read = 0
            try forEachEventInRecordedOrder(reader) { event in
                read += 1
                guard filter.matches(event) else { return }
                let decoded = try? EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion)
                let row = ExportRow(event: event, data: decoded)
                sink.write(format == "csv" ? row.csv : row.json + "\n")
                exported += 1
            }
            try sink.close()
            printError("exported \(exported) of \(read) events" + (out.map { " to \($0)" } ?? ""))
        }
    }
}

/// Which events an export keeps.
struct ExportFilter {
    var from: Int64?
    var to: Int64?
    var actor: String?
    var tenant: String?
    var types: Set<String> = []
    /// A stream of a tenant.
    struct StreamKey: Hashable {
        let tenant: String
        let stream: String
    }

    /// When set, only events of these streams.
    var streams: Set<StreamKey>?

    func matches(_ event: StoredEvent) -> Bool {
        if let from, event.businessTime < from { return false }
        if let to, event.businessTime >= to { return false }
        if let actor, event.actor != actor { return false }
        if let tenant, event.tenant != tenant { return false }
        if !types.isEmpty && !types.contains(event.type) { return false }
        if let streams, !streams.contains(StreamKey(tenant: event.tenant, stream: event.stream)) { return false }
        return true
    }
}

/// Calls `body` with every event, oldest recorded first (`RecordedOrderReader`).
func forEachEventInRecordedOrder(_ reader: any EventSource, _ body: (StoredEvent) throws -> Void) throws {
    var ordered = try RecordedOrderReader(source: reader, from: Array(repeating: 0, count: reader.partitionCount), to: try reader.endOffsets())
    while let event = try ordered.next() { try body(event) }
}

/// One exported event.
struct ExportRow {
    let event: StoredEvent
    let data: EventData?

    static let columns = ["position", "id", "tenant", "stream", "version", "type", "at", "recorded_at", "actor", "correlation_id", "data"]
    static let csvHeader = columns.joined(separator: ",") + "\r\n"

    /// The data as a JSON object (fields in field-number order); raw bytes as hex when
    /// they do not decode.
    var dataJSON: String {
        guard let data else { return "{\"undecodable\":\"" + event.data.map { String(format: "%02x", $0) }.joined() + "\"}" }
        var out: [UInt8] = []
        EventOutput.appendObject(data, fields: Field.allCases, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private var values: [String] {
        [event.position.description, event.id.description, event.tenant, event.stream, String(event.streamVersion), event.type,
         Timestamp.format(event.businessTime), Timestamp.format(event.recordedTime), event.actor, event.correlationId ?? ""]
    }

    /// One NDJSON line (without the newline).
    var json: String {
        var fields = zip(Self.columns, values).map { name, value in
            jsonString(name) + ":" + (name == "version" ? value : name == "correlation_id" && event.correlationId == nil ? "null" : jsonString(value))
        }
        fields.append("\"data\":" + dataJSON)
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// One CSV record, ending in CRLF (RFC 4180).
    var csv: String { (values + [dataJSON]).map(csvField).joined(separator: ",") + "\r\n" }
}

/// A CSV field as RFC 4180 writes it: quoted when it holds a comma, a double quote, a
/// line break or leading/trailing spaces, with each double quote doubled inside quotes.
func csvField(_ text: String) -> String {
    let needsQuotes = text.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
        || text.first == " " || text.last == " "
    guard needsQuotes else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// Buffered output to standard output or a file.
final class OutputSink {
    private let handle: FileHandle
    private let path: String?
    private var buffer: [UInt8] = []

    init(path: String?) throws {
        self.path = path
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw QueryError(description: "cannot create \(path)")
            }
            self.handle = handle
        } else {
            handle = FileHandle.standardOutput
        }
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 20 { flush() }
    }

    private func flush() {
        handle.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        flush()
        if path != nil {
            do { try handle.synchronize(); try handle.close() } catch { throw QueryError(description: "cannot write \(path ?? ""): \(error.localizedDescription)") }
        }
    }
}
