extension Partition {
    /// A read-only partition catches up with what a writer in another process appended
    /// since it was opened or last refreshed: the complete, checksummed batches after the
    /// known end of its last segment, and the segments rolled since. A batch at the end
    /// that is incomplete or fails its checksum is taken as not yet written (a writer is
    /// copying it): the end stays before it, and the next refresh looks again. Damage
    /// there is found by `log verify` and by a writable open, not by a refresh.
    /// Returns whether the partition grew. Cost: the new bytes, and one directory listing.
    func refresh() throws -> Bool {
        precondition(isReadOnly, "refresh is for read-only partitions: a writer knows its own end")
        // Only what the writer acknowledged (durable, in fsync mode): a batch written but not
        // yet synced is left for a later refresh; a file caught mid-write, likewise.
        let acknowledged: Int64?
        switch AcknowledgedEnd.limit(directory: directory, storage: storage) {
        case .absent: acknowledged = nil
        case let .end(end): acknowledged = end
        case .unreadable: return false
        }
        let (known, lastBase) = shared.withLock { ($0.segments.last, $0.segments.last?.baseOffset) }
        let newer = try storage.listDirectory(directory).compactMap(SegmentFile.baseOffset(ofLogFile:))
            .filter { base in lastBase.map { base > $0 } ?? true }.sorted()
        var grew = false
        if var active = known {
            let before = active.nextOffset
            try walk(&active, upTo: acknowledged)
            // A rolled segment is complete: seal it once its data reach the next one's base.
            let sealed = newer.first.map { active.nextOffset == $0 } ?? false
            if sealed { active.seal(sharing: segmentFiles) }
            if active.nextOffset != before || sealed { grew = grew || active.nextOffset != before; commit(active) }
            guard newer.isEmpty || sealed else { return grew }
        }
        for (i, base) in newer.enumerated() {
            let path = directory + "/" + SegmentFile.name(baseOffset: base, extension: SegmentFile.logExtension)
            let file = try storage.open(path, create: false, writable: false)
            var segment = SegmentState(baseOffset: base, path: path, access: .held(file), size: 0, nextOffset: base,
                                       index: SegmentIndex(intervalBytes: options.indexIntervalBytes), sealed: false)
            try walk(&segment, upTo: acknowledged)
            let last = i + 1 == newer.count
            if !last {
                guard segment.nextOffset == newer[i + 1] else {
                    shared.withLock { $0.segments.append(segment) }
                    return true
                }
                segment.seal(sharing: segmentFiles)
            }
            shared.withLock { $0.segments.append(segment) }
            grew = true
        }
        return grew
    }

    /// Moves the segment's end past the complete, checksummed batches that follow it, up to
    /// the acknowledged end (nil: no limit).
    private func walk(_ segment: inout SegmentState, upTo acknowledged: Int64?) throws {
        let fileSize = try segment.file().size()
        guard fileSize > segment.size else { return }
        var scanner = SegmentScanner(file: try segment.file(), from: segment.size, limit: fileSize)
        while case let .batch(header, position) = try scanner.next() {
            guard header.baseOffset == segment.nextOffset, acknowledged.map({ header.nextOffset <= $0 }) ?? true,
                  try scanner.verifyCurrent() else { return }
            segment.index?.add(batch: header, segmentBase: segment.baseOffset, position: position)
            segment.size = position + Int64(header.batchLength)
            segment.nextOffset = header.nextOffset
        }
    }

    /// Replaces the state of the segment with the same base (the last one).
    private func commit(_ segment: SegmentState) {
        shared.withLock { state in
            guard let i = state.segments.lastIndex(where: { $0.baseOffset == segment.baseOffset }) else { return }
            state.segments[i] = segment
        }
    }
}
