/// Reads a segment file on its own, without the log's directory, manifest or recovery
/// point, and reports every batch: for `backorder inspect` and for damaged logs.
public enum SegmentInspector {
    /// One entry of the dump.
    public enum Entry {
        /// A batch: its header, position, "ok" or what is wrong, and its records when intact.
        case batch(BatchHeader, position: Int64, status: String, batch: RecordBatch?)
        /// Bytes that are not a batch; the inspector stops there (lengths cannot be trusted).
        case damaged(position: Int64, reason: String)
    }

    /// Totals of an inspection.
    public struct Report: Sendable {
        /// Batches seen.
        public var batches = 0
        /// Records in intact batches.
        public var records = 0
        /// Bytes of batches.
        public var dataBytes: Int64 = 0
        /// Size of the file.
        public var fileBytes: Int64 = 0
    }

    /// Walks the file at `path`, calling `visit` for every batch or damaged region.
    public static func inspect(path: String, storage: any Storage = PosixStorage(), _ visit: (Entry) throws -> Void) throws -> Report {
        let file = try storage.open(path, create: false, writable: false)
        defer { file.close() }
        var report = Report()
        report.fileBytes = try file.size()
        var scanner = SegmentScanner(file: file, from: 0, limit: report.fileBytes)
        var expected: Int64?
        while true {
            switch try scanner.next() {
            case let .batch(header, position):
                report.batches += 1
                report.dataBytes = position + Int64(header.batchLength)
                var status = "ok"
                var batch: RecordBatch?
                do {
                    batch = try scanner.decodeCurrent()
                    report.records += header.recordCount
                } catch let error as LogError {
                    if case let .corrupt(_, _, reason) = error { status = "DAMAGED: " + reason } else { throw error }
                }
                if let expected, expected != header.baseOffset, batch != nil {
                    status = "GAP: expected base offset \(expected)"
                }
                expected = header.nextOffset
                try visit(.batch(header, position: position, status: status, batch: batch))
            case .end:
                return report
            case let .invalid(position, reason):
                try visit(.damaged(position: position, reason: reason))
                return report
            }
        }
    }
}
