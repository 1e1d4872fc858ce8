/// Opens a partition directory: finds its segments, recovers the tail of the last one
/// from the recovery point, and (when writable) takes the lock and repairs a torn tail.
///
/// Recovery rules (docs/FORMAT.md, "Recovery"):
/// - Sealed segments are trusted to their file size; their batches are checksummed when read.
/// - In the last segment, bytes before the recovery point are walked header by header
///   (no checksum) to rebuild the in-memory index; a header that does not fit there is
///   corruption of acknowledged data and fails the open.
/// - After the recovery point every batch is checksummed. The first bad one starts the
///   torn tail: a writable open truncates the file there and reports the bytes dropped;
///   a read-only open leaves the file alone and stops reading there.
struct PartitionOpener {
    let number: Int
    let directory: String
    let storage: any Storage
    let options: LogOptions
    let manifest: Manifest
    let segmentFiles: OpenSegmentFiles

    func open(lock: (any StorageLock)?) throws -> Partition {
        let writable = lock != nil
        if writable { try removeTemporaryFiles() }
        let names = try storage.listDirectory(directory)
        let bases = names.compactMap(SegmentFile.baseOffset(ofLogFile:)).sorted()
        let point = try storage.readWholeFile(directory + "/" + RecoveryPoint.fileName).flatMap(RecoveryPoint.decode)
        // A read-only open beside a writer stops at the acknowledged end it published, so
        // that it never reads a batch written but not yet durable (no writer, an unreadable
        // or absent file: the data's end).
        let acknowledged: Int64? = if !writable, case let .end(end) = AcknowledgedEnd.limit(directory: directory, storage: storage) { end } else { nil }
        var events: [RecoveryEvent] = []
        var segments: [SegmentState] = []
        // The chain hash of the last valid batch of the last segment, if it has one.
        var lastChain: ChainHash?

        for (i, base) in bases.enumerated() {
            let path = directory + "/" + SegmentFile.name(baseOffset: base, extension: SegmentFile.logExtension)
            if i + 1 < bases.count {
                // Sealed: sized and let go (readers open it through the shared open files).
                let file = try storage.open(path, create: false, writable: false)
                defer { file.close() }
                let size = try file.size()
                segments.append(SegmentState(baseOffset: base, path: path, access: .shared(segmentFiles), size: size,
                                             nextOffset: bases[i + 1], index: nil, sealed: true))
            } else {
                let file = try storage.open(path, create: false, writable: writable)
                let size = try file.size()
                segments.append(try recoverActive(base: base, path: path, file: file, fileSize: size, point: point,
                                                  acknowledged: acknowledged, events: &events, lastChain: &lastChain))
            }
        }
        if let point, let last = segments.last, point.segmentBase > last.baseOffset {
            throw LogError.corrupt(path: directory, offset: 0, reason: "recovery point names segment \(point.segmentBase), which is missing: acknowledged data was lost")
        }
        if segments.isEmpty, let point, point.nextOffset > 0 {
            throw LogError.corrupt(path: directory, offset: 0, reason: "no segment files, but the recovery point says offsets up to \(point.nextOffset) were written: acknowledged data was lost")
        }
        if segments.isEmpty {
            guard writable else {
                return Partition(number: number, directory: directory, storage: storage, options: options, manifest: manifest,
                                 segmentFiles: segmentFiles, segments: [], recoveryEvents: events, writer: nil)
            }
            let base = point?.nextOffset ?? 0
            let path = directory + "/" + SegmentFile.name(baseOffset: base, extension: SegmentFile.logExtension)
            let file = try storage.open(path, create: true, writable: true)
            segments.append(SegmentState(baseOffset: base, path: path, access: .held(file), size: 0, nextOffset: base,
                                         index: SegmentIndex(intervalBytes: options.indexIntervalBytes), sealed: false))
        }

        var writer: PartitionWriter?
        if let lock, let active = segments.last {
            if try active.file().size() != active.size {
                // Cut the torn tail or the zero-filled space; the writer zero-fills anew.
                try active.file().truncate(to: active.size)
            }
            // Whatever a previous writer left unsynced (in none or interval mode) is made
            // durable now, before anyone builds on it.
            try active.file().sync()
            // Not only when this open created the active segment: an open or a writer that
            // failed before its directory sync (or was killed) may have left a file whose
            // name is not yet durable, and acknowledging appends to it would let a power cut
            // take the whole file. A recovery point naming the segment was saved (with a
            // directory sync) after the segment's creation: then the name is durable.
            if point?.segmentBase != active.baseOffset { try storage.syncDirectory(directory) }
            let durable = point.map { $0.segmentBase == active.baseOffset ? min($0.position, active.size) : 0 } ?? 0
            let head = try lastChain ?? chainHeadBefore(active: segments.count - 1, segments: segments)
            writer = try PartitionWriter(storage: storage, directory: directory, options: options,
                                         segmentBytes: manifest.segmentBytes, lock: lock, active: active,
                                         maxTimestamp: active.index?.maxTimestamp ?? .min, checkpointPosition: durable,
                                         chainHead: head)
        }
        return Partition(number: number, directory: directory, storage: storage, options: options, manifest: manifest,
                         segmentFiles: segmentFiles, segments: segments, recoveryEvents: events, writer: writer)
    }

    /// Recovers the last segment. A walk that ends in a tail to cut is repeated: the cut is
    /// made only where two walks agree and two reads of the bytes there return the same
    /// bytes. A device that returns flipped bits must fail the open, not make it cut
    /// acknowledged records that are intact on disk (a torn write reads the same each time).
    private func recoverActive(base: Int64, path: String, file: any StorageFile, fileSize: Int64, point: RecoveryPoint?,
                               acknowledged: Int64?, events: inout [RecoveryEvent], lastChain: inout ChainHash?) throws -> SegmentState {
        var previousEnd: Int64?
        for _ in 0..<Limits.recoveryWalks {
            var walkEvents = events, walkChain = lastChain
            let state = try recoverActiveWalk(base: base, path: path, file: file, fileSize: fileSize, point: point,
                                              acknowledged: acknowledged, events: &walkEvents, lastChain: &walkChain)
            let cutsATail = walkEvents.count > events.count
            let confirmed = try cutsATail && state.size == previousEnd && readsAgree(file, at: state.size, fileSize: fileSize)
            if !cutsATail || confirmed {
                events = walkEvents
                lastChain = walkChain
                return state
            }
            previousEnd = state.size
        }
        throw LogError.corrupt(path: path, offset: previousEnd ?? 0,
                               reason: "reads of this segment's tail do not agree (an unreliable device?): not cutting acknowledged data; retry the open")
    }

    /// Whether two reads of the bytes from `position` (up to 1 MiB) return the same bytes.
    private func readsAgree(_ file: any StorageFile, at position: Int64, fileSize: Int64) throws -> Bool {
        let count = Int(min(fileSize - position, 1 << 20))
        guard count > 0 else { return true }
        var first = [UInt8](repeating: 0, count: count), second = [UInt8](repeating: 0, count: count)
        let a = try first.withUnsafeMutableBytes { try file.read(into: $0, at: position) }
        let b = try second.withUnsafeMutableBytes { try file.read(into: $0, at: position) }
        return a == b && first == second
    }

    /// One walk of the last segment (docs/FORMAT.md, "Recovery", step 3).
    private func recoverActiveWalk(base: Int64, path: String, file: any StorageFile, fileSize: Int64, point: RecoveryPoint?,
                                   acknowledged: Int64?, events: inout [RecoveryEvent], lastChain: inout ChainHash?) throws -> SegmentState {
        var index = SegmentIndex(intervalBytes: options.indexIntervalBytes)
        var scanner = SegmentScanner(file: file, from: 0, limit: fileSize)
        var expected = base
        // Bytes before this were durable when the recovery point was saved.
        var trusted: Int64 = 0
        if let point, point.segmentBase == base {
            guard point.position <= fileSize else {
                throw LogError.corrupt(path: path, offset: fileSize, reason: "file is \(fileSize) bytes but \(point.position) bytes were acknowledged as durable")
            }
            trusted = point.position
        }
        // A read-only open (a query process, an audit) resumes from the active index's last
        // entry before the recovery point, if its batch is there: the batches before it were
        // durable, and every read checks their CRCs. A writable open walks them all, so that
        // damage before the recovery point fails the open before anything is appended.
        let stem = String(path.dropLast(SegmentFile.logExtension.count))
        if trusted > 0, !options.writable, let bytes = try? storage.readWholeFile(stem + SegmentFile.activeIndexExtension),
           let hint = SegmentIndex.decodeActive(bytes, segmentSize: trusted, intervalBytes: options.indexIntervalBytes),
           let last = hint.entries.last, let resumed = hint.resumingAtLastEntry() {
            var probe = SegmentScanner(file: file, from: Int64(last.position), limit: fileSize, bufferBytes: BatchHeader.size)
            if case let .batch(header, _)? = try? probe.next(), header.baseOffset == base + Int64(last.relativeOffset) {
                index = resumed
                expected = header.baseOffset
                scanner.seek(to: Int64(last.position))
            }
        }
        while true {
            let item = try scanner.next()
            switch item {
            case let .batch(header, position):
                let inTrustedRange = position < trusted
                let offsetOK = header.baseOffset == expected
                let checksumOK = try inTrustedRange || scanner.verifyCurrent()
                if offsetOK && checksumOK {
                    // Written, but not yet acknowledged: not for a read-only reader.
                    if let acknowledged, header.nextOffset > acknowledged {
                        return SegmentState(baseOffset: base, path: path, access: .held(file), size: position, nextOffset: expected, index: index, sealed: false)
                    }
                    index.add(batch: header, segmentBase: base, position: position)
                    expected = header.nextOffset
                    lastChain = header.chain
                    continue
                }
                let reason = offsetOK ? "batch CRC32C mismatch" : "batch has base offset \(header.baseOffset), expected \(expected)"
                if inTrustedRange { throw LogError.corrupt(path: path, offset: position, reason: reason + " before the recovery point") }
                return try tail(at: position, reason: reason, base: base, path: path, file: file, fileSize: fileSize,
                                index: index, next: expected, events: &events)
            case let .end(position):
                if position < trusted {
                    throw LogError.corrupt(path: path, offset: position, reason: "zero bytes before the recovery point at \(trusted)")
                }
                // Unsynced writes may reach the disk out of order: data after a zero gap
                // was never acknowledged, but its removal is reported, never silent.
                if try lastNonZeroByte(file, from: position, to: fileSize) > position {
                    return try tail(at: position, reason: "data after a zero-filled gap", base: base, path: path, file: file,
                                    fileSize: fileSize, index: index, next: expected, events: &events)
                }
                return SegmentState(baseOffset: base, path: path, access: .held(file), size: position, nextOffset: expected, index: index, sealed: false)
            case let .invalid(position, reason):
                if position < trusted { throw LogError.corrupt(path: path, offset: position, reason: reason + " before the recovery point") }
                return try tail(at: position, reason: reason, base: base, path: path, file: file, fileSize: fileSize,
                                index: index, next: expected, events: &events)
            }
        }
    }

    /// Reports a torn tail; the writable open truncates it afterwards.
    private func tail(at position: Int64, reason: String, base: Int64, path: String, file: any StorageFile, fileSize: Int64,
                      index: SegmentIndex, next: Int64, events: inout [RecoveryEvent]) throws -> SegmentState {
        let dropped = try lastNonZeroByte(file, from: position, to: fileSize) - position
        events.append(RecoveryEvent(partition: number, path: path, offset: position, bytesDropped: max(dropped, 0),
                                    reason: reason + (options.writable ? "" : " (read-only open: left in place, not read)")))
        return SegmentState(baseOffset: base, path: path, access: .held(file), size: position, nextOffset: next, index: index, sealed: false)
    }

    /// The position after the last non-zero byte in `[from, to)`: the extent of the torn
    /// data, without the zero-filled space after it.
    private func lastNonZeroByte(_ file: any StorageFile, from: Int64, to: Int64) throws -> Int64 {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var end = from
        var at = from
        while at < to {
            let n = try chunk.withUnsafeMutableBytes { (raw) throws in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(min(Int64(raw.count), to - at))]), at: at)
            }
            if n == 0 { break }
            if let last = chunk[0..<n].lastIndex(where: { $0 != 0 }) { end = at + Int64(last) + 1 }
            at += Int64(n)
        }
        return end
    }

    private func removeTemporaryFiles() throws {
        for name in try storage.listDirectory(directory) where name.hasSuffix(".tmp") {
            // Half-written replacements of the recovery point or index files.
            try storage.remove(directory + "/" + name)
        }
    }
}
