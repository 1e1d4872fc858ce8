extension PartitionOpener {
    /// The chain hash the next batch of the partition links to when the active segment
    /// (number `active` in `segments`) holds no batch: the last batch of the newest earlier
    /// segment that has one, or the partition's genesis hash when there is none.
    ///
    /// Only the tail of that sealed segment is read: from its index's last entry (the index
    /// is loaded or rebuilt as for any reader) to its end, header by header.
    func chainHeadBefore(active: Int, segments: [SegmentState]) throws -> ChainHash {
        var i = active - 1
        while i >= 0 {
            let segment = segments[i]
            let index = try SegmentIndexLoader(storage: storage, writable: true, intervalBytes: options.indexIntervalBytes)
                .load(segment: segment)
            var scanner = SegmentScanner(file: try segment.file(), from: Int64(index.entries.last?.position ?? 0), limit: segment.size)
            var last: ChainHash?
            scanLoop: while true {
                switch try scanner.next() {
                case let .batch(header, _): last = header.chain
                case .end: break scanLoop
                case let .invalid(position, reason): throw LogError.corrupt(path: segment.path, offset: position, reason: reason)
                }
            }
            if let last { return last }
            i -= 1
        }
        return ChainHash.genesis(logID: manifest.logID, partition: number)
    }
}
