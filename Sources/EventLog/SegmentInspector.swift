/// Reads a segment file on its own, without the log's directory, manifest or recovery
/// point, and reports every batch: for `backorder inspect` and for damaged logs.
public enum SegmentInspector {
    /// One entry of the dump.
    public enum Entry {
        /// A batch: its header, position, "ok" or what is wrong, its chain link's status
        /// (`header.chain` is its hash), and its records when intact.
        case batch(BatchHeader, position: Int64, status: String, link: String, batch: RecordBatch?)
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
    /// `previousChain` is the chain hash the file's first batch must link to, when known
    /// (`previousChain(forSegment:)`); each later batch is checked against the one before it.
    public static func inspect(path: String, storage: any Storage = PosixStorage(), previousChain: ChainHash? = nil,
                               _ visit: (Entry) throws -> Void) throws -> Report {
        let file = try storage.open(path, create: false, writable: false)
        defer { file.close() }
        var report = Report()
        report.fileBytes = try file.size()
        var scanner = SegmentScanner(file: file, from: 0, limit: report.fileBytes)
        var expected: Int64?
        var previous = previousChain
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
                var link = "unchained (format \(header.version))"
                if header.version >= 2 {
                    if let previous {
                        link = try scanner.withBatchBytes { header.linksTo(previous, batch: $0) } ? "link ok" : "LINK BROKEN"
                    } else {
                        link = "link not checked (the previous batch is in another segment)"
                    }
                }
                previous = header.chain
                try visit(.batch(header, position: position, status: status, link: link, batch: batch))
            case .end:
                return report
            case let .invalid(position, reason):
                try visit(.damaged(position: position, reason: reason))
                return report
            }
        }
    }
}

extension SegmentInspector {
    /// The chain hash the first batch of the segment at `path` must link to, found beside
    /// it: the partition's genesis hash for the segment of base offset 0 (from the log's
    /// `MANIFEST` two directories up and the partition directory's number), else the last
    /// batch of the previous segment file. Nil when that cannot be read.
    public static func previousChain(forSegment path: String, storage: any Storage = PosixStorage()) -> ChainHash? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let name = parts.last, let base = SegmentFile.baseOffset(ofLogFile: String(name)), parts.count >= 2 else { return nil }
        let directory = parts.dropLast().joined(separator: "/")
        if base == 0 {
            let partitionName = parts[parts.count - 2]
            guard partitionName.hasPrefix("partition-"), let number = Int(partitionName.dropFirst("partition-".count)) else { return nil }
            let log = parts.count >= 3 ? parts.dropLast(2).joined(separator: "/") : "."
            guard let bytes = try? storage.readWholeFile((log.isEmpty ? "." : log) + "/" + Manifest.fileName),
                  let manifest = try? Manifest.decode(bytes, path: log) else { return nil }
            return ChainHash.genesis(logID: manifest.logID, partition: number)
        }
        guard let names = try? storage.listDirectory(directory.isEmpty ? "." : directory),
              let earlier = names.compactMap(SegmentFile.baseOffset(ofLogFile:)).filter({ $0 < base }).max() else { return nil }
        var last: ChainHash?
        let earlierPath = (directory.isEmpty ? "." : directory) + "/" + SegmentFile.name(baseOffset: earlier, extension: SegmentFile.logExtension)
        guard (try? inspect(path: earlierPath, storage: storage, { entry in
            if case let .batch(header, _, _, _, _) = entry { last = header.chain }
        })) != nil else { return nil }
        return last
    }
}
