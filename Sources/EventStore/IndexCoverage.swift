import EventLog

/// What the event store's index rows cover, committed with them as the key-value store's
/// metadata (docs/EVENTS.md, "Indexes"): per partition the log offset below which every
/// event is in the rows, the log's id, and per partition the id of the event just below
/// that offset ("-" at 0). The log id and those event ids tie the rows to this log's
/// history: rows built from another log, or from a history since cut and rewritten, do
/// not match and are rebuilt.
///
/// Encoding: text lines `backorder-index 5`, `covered O1 O2 …`, `log ID`, `last ID1 ID2 …`
/// (the key-value store's manifest checksums it).
struct IndexCoverage: Equatable {
    static let formatLine = "backorder-index 5"

    /// What set an earlier format's rows apart, when `bytes` is the coverage of one: they
    /// are rebuilt, never read as this format's.
    static func earlierFormat(_ bytes: [UInt8]) -> String? {
        if bytes.starts(with: Array("backorder-index 2\n".utf8)) { return "event ids not scoped by tenant" }
        if bytes.starts(with: Array("backorder-index 3\n".utf8)) { return "values of fixed 64-bit fields" }
        if bytes.starts(with: Array("backorder-index 4\n".utf8)) { return "ids filed under 128 bits" }
        return nil
    }

    var covered: [Int64]
    var logID: String
    var lastIDs: [String]

    var encoded: [UInt8] {
        let text = "\(Self.formatLine)\ncovered \(covered.map(String.init).joined(separator: " "))\nlog \(logID)\nlast \(lastIDs.joined(separator: " "))\n"
        return Array(text.utf8)
    }

    /// nil when `bytes` is not a coverage this build wrote (empty: a new index).
    init?(decoding bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 5, lines[0] == Self.formatLine, lines[1].hasPrefix("covered "), lines[2].hasPrefix("log "),
              lines[3].hasPrefix("last "), lines[4].isEmpty else { return nil }
        let fields = lines[1].split(separator: " ").dropFirst()
        let covered = fields.compactMap { Int64($0) }
        guard covered.count == fields.count, covered.allSatisfy({ $0 >= 0 }) else { return nil }
        let lastIDs = lines[3].split(separator: " ").dropFirst().map(String.init)
        guard lastIDs.count == covered.count else { return nil }
        self.init(covered: covered, logID: String(lines[2].dropFirst(4)), lastIDs: lastIDs)
    }

    init(covered: [Int64], logID: String, lastIDs: [String]) {
        self.covered = covered
        self.logID = logID
        self.lastIDs = lastIDs
    }
}
