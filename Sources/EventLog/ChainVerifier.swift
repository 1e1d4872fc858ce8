#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Checks a whole log directory batch by batch: every CRC, every base offset, every link
/// of every partition's hash chain, and (optionally) a set of signed-off heads — for
/// `backorder audit verify` (docs/AUDIT.md).
///
/// It reads the files directly, never through `WriteAheadLog.open`, so that damage that
/// would stop an open is reported like any other, and it keeps going past damage: after a
/// bad header it looks for the next batch whose header and CRC are intact. Each chain
/// link is checked against the previous batch's *stored* hash, so one altered batch is
/// reported once, not together with everything after it. Partitions are checked in
/// parallel, one per core. Nothing is written. Beside a writer, what it meets past a
/// partition's acknowledged end other than whole batches is the writer's work in progress,
/// as for every reader, not damage (`beingWritten`).
public struct ChainVerifier: Sendable {
    /// One thing found wrong.
    public struct Damage: Sendable, Equatable, CustomStringConvertible {
        /// The partition (nil for the manifest or the heads file).
        public var partition: Int?
        /// The file concerned.
        public var path: String
        /// Byte offset in the file.
        public var byteOffset: Int64
        /// The event offset concerned: the batch's base offset, or the offset expected there.
        public var eventOffset: Int64?
        /// What is wrong.
        public var reason: String

        public var description: String {
            let place = partition.map { "partition \($0): " } ?? ""
            let event = eventOffset.map { ", event offset \($0)" } ?? ""
            return "\(place)\(path) at byte \(byteOffset)\(event): \(reason)"
        }
    }

    /// What one partition holds and what was wrong with it.
    public struct PartitionReport: Sendable {
        /// The partition.
        public var partition: Int
        /// Segment files read.
        public var segments = 0
        /// Batches found.
        public var batches = 0
        /// Events (records) in those batches.
        public var events: Int64 = 0
        /// Bytes of segment data read (batches and skipped bytes).
        public var bytes: Int64 = 0
        /// The offset after the last batch.
        public var endOffset: Int64 = 0
        /// The chain hash of the last batch (the genesis hash when there is none).
        public var head: ChainHash
        /// Everything wrong, in file order.
        public var damage: [Damage] = []
        /// Where the check ended because a writer holding the partition was at work past
        /// its acknowledged end (nil: it read the partition to its end).
        public var endedBesideWriter: Int64?
    }

    /// The outcome of a verification.
    public struct Report: Sendable {
        /// The manifest read.
        public var manifest: Manifest
        /// Per partition, in order.
        public var partitions: [PartitionReport]
        /// Problems outside any partition (heads file vs log).
        public var otherDamage: [Damage] = []

        /// Every problem found.
        public var damage: [Damage] { otherDamage + partitions.flatMap(\.damage) }
        /// Whether the batches carry a hash chain (manifest version 2 and later).
        public var chained: Bool { manifest.version >= 2 }
        /// The heads found, to be signed off.
        public var heads: ChainHeads {
            ChainHeads(logID: manifest.logID ?? "-",
                       heads: partitions.map { ChainHeads.Head(partition: $0.partition, endOffset: $0.endOffset, chain: $0.head) })
        }
    }

    /// The log directory (the one holding `MANIFEST`).
    public let path: String
    /// How files are read.
    public let storage: any Storage
    /// Also decompress every batch and check its record framing (slower).
    public var deep = false

    /// A verifier of the log at `path`.
    public init(path: String, storage: any Storage = PosixStorage(), deep: Bool = false) {
        self.path = path
        self.storage = storage
        self.deep = deep
    }

    /// Verifies every partition; `progress` is called now and then with the bytes read
    /// since its previous call (from several threads). Throws only when the manifest
    /// cannot be read (without it the partitions are unknown).
    public func verify(expecting expected: ChainHeads? = nil, progress: @escaping @Sendable (Int64) -> Void = { _ in }) throws -> Report {
        let manifestPath = path + "/" + Manifest.fileName
        guard let bytes = try storage.readWholeFile(manifestPath) else { throw LogError.notALog(path: path, reason: "no \(Manifest.fileName) file") }
        let manifest = try Manifest.decode(bytes, path: manifestPath)
        var other: [Damage] = []
        var expectedHeads: [Int: ChainHeads.Head] = [:]
        if let expected {
            if expected.logID != (manifest.logID ?? "-") {
                other.append(Damage(partition: nil, path: manifestPath, byteOffset: 0, eventOffset: nil,
                                    reason: "log-id is \(manifest.logID ?? "-"), the expected heads are of log \(expected.logID): another log is in its place"))
            }
            for head in expected.heads {
                if head.partition < manifest.partitionCount { expectedHeads[head.partition] = head } else {
                    other.append(Damage(partition: head.partition, path: path, byteOffset: 0, eventOffset: head.endOffset,
                                        reason: "the expected heads name partition \(head.partition), but the log has \(manifest.partitionCount)"))
                }
            }
        }
        let heads = expectedHeads
        let results = ConditionLock([PartitionReport?](repeating: nil, count: manifest.partitionCount))
        DispatchQueue.concurrentPerform(iterations: manifest.partitionCount) { number in
            var check = PartitionCheck(verifier: self, manifest: manifest, number: number, expected: heads[number], progress: progress)
            let report = check.run()
            results.withLock { $0[number] = report }
        }
        let partitions = results.withLock { $0 }.enumerated().map { number, report in
            report ?? PartitionReport(partition: number, head: ChainHash.genesis(logID: manifest.logID, partition: number))
        }
        return Report(manifest: manifest, partitions: partitions, otherDamage: other)
    }
}

/// The check of one partition, on one thread.
private struct PartitionCheck {
    let verifier: ChainVerifier
    let manifest: Manifest
    let number: Int
    let expected: ChainHeads.Head?
    let progress: @Sendable (Int64) -> Void
    var report: PartitionReport
    /// The offset the next batch must start at.
    var nextOffset: Int64 = 0
    /// The stored chain hash of the previous batch, which the next one must link to.
    var previous: ChainHash
    /// Whether the batch ending at the expected head's offset was seen.
    var expectedHeadSeen = false
    var unreported: Int64 = 0

    typealias PartitionReport = ChainVerifier.PartitionReport
    typealias Damage = ChainVerifier.Damage

    init(verifier: ChainVerifier, manifest: Manifest, number: Int, expected: ChainHeads.Head?, progress: @escaping @Sendable (Int64) -> Void) {
        self.verifier = verifier
        self.manifest = manifest
        self.number = number
        self.expected = expected
        self.progress = progress
        let genesis = ChainHash.genesis(logID: manifest.logID, partition: number)
        self.previous = genesis
        self.report = PartitionReport(partition: number, head: genesis)
    }

    var directory: String { verifier.path + "/" + WriteAheadLog.partitionDirectoryName(number) }
    var chained: Bool { manifest.version >= 2 }

    mutating func run() -> PartitionReport {
        do { try check() } catch {
            report.damage.append(Damage(partition: number, path: directory, byteOffset: 0, eventOffset: nextOffset,
                                        reason: "could not be read to the end: \(error)"))
        }
        progress(unreported)
        report.endOffset = nextOffset
        report.head = previous
        checkExpectedHead()
        return report
    }

    private mutating func damage(_ path: String, _ at: Int64, _ offset: Int64?, _ reason: String) {
        report.damage.append(Damage(partition: number, path: path, byteOffset: at, eventOffset: offset, reason: reason))
    }

    private mutating func check() throws {
        let storage = verifier.storage
        guard storage.exists(directory) else {
            damage(directory, 0, 0, "the partition directory is missing")
            return
        }
        let bases = try storage.listDirectory(directory).compactMap(SegmentFile.baseOffset(ofLogFile:)).sorted()
        let point = (try? storage.readWholeFile(directory + "/" + RecoveryPoint.fileName)).flatMap(RecoveryPoint.decode)
        if let point, !bases.contains(point.segmentBase), point.segmentBase > (bases.last ?? -1) {
            damage(directory + "/" + SegmentFile.name(baseOffset: point.segmentBase, extension: SegmentFile.logExtension), 0, point.segmentBase,
                   "the recovery point names this segment, which is missing: acknowledged data was removed")
        }
        for (i, base) in bases.enumerated() {
            let path = directory + "/" + SegmentFile.name(baseOffset: base, extension: SegmentFile.logExtension)
            let last = i == bases.count - 1
            if base != nextOffset {
                damage(path, 0, base, "segment starts at offset \(base), but the data before it ends at \(nextOffset) (a segment was removed, added or renamed)")
            }
            let file = try storage.open(path, create: false, writable: false)
            defer { file.close() }
            let size = try file.size()
            report.segments += 1
            var durable: Int64 = 0
            if let point, point.segmentBase == base {
                durable = point.position
                if size < point.position {
                    damage(path, size, nil, "the file is \(size) bytes but the recovery point says \(point.position) were durable: acknowledged data was cut off")
                }
            }
            try checkSegment(file: file, path: path, size: size, last: last, durable: durable)
        }
    }

    private mutating func checkSegment(file: any StorageFile, path: String, size opened: Int64, last: Bool, durable: Int64) throws {
        // The active segment's size follows the file down (`appendedSince`).
        var size = opened
        var scanner = SegmentScanner(file: file, from: 0, limit: size)
        while true {
            let item = try scanner.next()
            var crcOK = true
            if case let .batch(header, _) = item { crcOK = try scanner.withBatchBytes { header.verifyChecksum($0) } }
            // In the active segment, what is not a whole batch — a checksum that fails past the
            // recovery point (a writer may be copying this very batch into the page cache),
            // zeros before the file's end, bytes that are no batch — is the writer's work in
            // progress (`beingWritten`) or read again (`appendedSince`) before it is called
            // damage.
            if last, let position = Self.notWholeBatch(item, crcOK: crcOK, durable: durable, size: size) {
                switch try recheck(file, at: position, durable: durable, size: &size) {
                case .writerAtWork: return
                case let .readAgain(fresh):
                    scanner = fresh
                    continue
                case .damaged: break
                }
            }
            switch item {
            case let .batch(header, position):
                try checkBatch(header, at: position, crcOK: crcOK, scanner: scanner, path: path)
            case let .end(position):
                report.bytes += size - position
                if last && position < min(durable, size) {
                    damage(path, position, nextOffset, "zero bytes before the recovery point at byte \(durable): acknowledged data was erased")
                }
                guard position < size else { return }
                guard let resume = try nextBatch(file, after: position, size: size, nonZero: true) else {
                    if !last {
                        damage(path, position, nextOffset, "\(size - position) zero bytes at the end of a sealed segment (it should end at its last batch)")
                    }
                    return
                }
                damage(path, position, nextOffset, "zero bytes where a batch should be, up to byte \(resume.position)\(resume.batch ? "" : " (non-zero bytes that are no batch follow)")")
                guard resume.batch else { return }
                report.bytes -= size - resume.position
                scanner = SegmentScanner(file: file, from: resume.position, limit: size)
            case let .invalid(position, reason):
                let torn = last && position >= durable
                    ? " (after the recovery point: a crash while appending leaves this; a writable open cuts it)" : ""
                let resume = try nextBatch(file, after: position, size: size, nonZero: false)
                let skipped = (resume?.position ?? size) - position
                report.bytes += skipped
                damage(path, position, nextOffset, "\(reason)\(torn); \(skipped) bytes are not a readable batch" + (resume == nil ? " (to the end of the file)" : ""))
                guard let resume else { return }
                scanner = SegmentScanner(file: file, from: resume.position, limit: size)
            }
        }
    }

    /// Where the scan met something other than a whole batch, or nil: a batch whose
    /// checksum fails past the recovery point, zeros before the file's end, bytes that are
    /// no batch.
    private static func notWholeBatch(_ item: SegmentScanner.Item, crcOK: Bool, durable: Int64, size: Int64) -> Int64? {
        switch item {
        case let .batch(_, position): !crcOK && position >= durable ? position : nil
        case let .end(position): position < size ? position : nil
        case let .invalid(position, _): position
        }
    }

    /// What the check of the active segment does where its scan meets, at `position`,
    /// something other than a whole batch.
    private enum Recheck {
        /// A writer is at work there (`beingWritten`): the check of the partition ends.
        case writerAtWork
        /// A fresh read finds a whole batch there (`appendedSince`): go on from it.
        case readAgain(SegmentScanner)
        /// Neither: what the scan met is reported.
        case damaged
    }

    private mutating func recheck(_ file: any StorageFile, at position: Int64, durable: Int64, size: inout Int64) throws -> Recheck {
        if position >= durable, beingWritten() {
            report.bytes += size - position
            report.endedBesideWriter = nextOffset
            return .writerAtWork
        }
        if let fresh = try appendedSince(file, at: position, size: &size) { return .readAgain(fresh) }
        return .damaged
    }

    /// Whether a writer holds the partition now and has acknowledged nothing at or past the
    /// next offset (docs/FORMAT.md, "Acknowledged end"): then what the active segment holds
    /// there is the writer's work in progress — zeros, a batch half copied into the page
    /// cache, or whole batches not yet acknowledged — and the check ends, as every reader
    /// does. Asked where the scan meets something other than a whole batch, so a writer that
    /// opened during the check counts too. Every batch below the acknowledged end was written
    /// whole before the end was published: one there that reads torn is damage (or a stale
    /// buffer, which `appendedSince` reads again). Only past the recovery point (`recheck`),
    /// and only while nothing in the partition was damaged: a batch reported damaged may
    /// carry any offsets, and the next offset it set is no measure of what was acknowledged.
    private func beingWritten() -> Bool {
        guard report.damage.isEmpty, case let .end(end) = AcknowledgedEnd.limit(directory: directory, storage: verifier.storage) else { return false }
        return nextOffset >= end
    }

    /// A scanner from `position` when a fresh read finds a whole batch there with a good
    /// checksum, else nil. The scanner's buffer was read earlier: a writer appending beside
    /// this check fills the pre-zeroed space after it, and a batch half copied into the
    /// page cache reads as torn (or with a checksum that fails) for a moment. Read again
    /// (three times, 20 ms apart) before calling the end of the active segment damage.
    /// `size` follows the file down: a closing writer cuts the pre-zeroed space.
    private func appendedSince(_ file: any StorageFile, at position: Int64, size: inout Int64) throws -> SegmentScanner? {
        for attempt in 0..<3 {
            size = min(size, try file.size())
            var probe = SegmentScanner(file: file, from: position, limit: size)
            if let item = try? probe.next(), case .batch = item, (try? probe.verifyCurrent()) == true {
                return SegmentScanner(file: file, from: position, limit: size)
            }
            if attempt < 2 { usleep(20_000) }
        }
        return nil
    }

    /// Checks a batch whose checksum the caller verified (`crcOK`).
    private mutating func checkBatch(_ header: BatchHeader, at position: Int64, crcOK: Bool, scanner: SegmentScanner, path: String) throws {
        var problems: [String] = []
        let previous = self.previous
        let chained = self.chained
        let linkOK = try scanner.withBatchBytes { base in !chained || header.version < 2 || header.linksTo(previous, batch: base) }
        if !crcOK { problems.append("batch CRC32C mismatch (its bytes were changed)") }
        if chained && header.version < 2 { problems.append("batch of format version \(header.version) (without a chain hash) in a log of version \(manifest.version)") }
        if header.baseOffset != nextOffset {
            problems.append("batch has base offset \(header.baseOffset), expected \(nextOffset) (batches were removed, inserted or reordered)")
        }
        if !linkOK { problems.append("chain link broken: its chain hash does not follow from the previous batch's (it or the batch before it was changed, removed or reordered)") }
        if verifier.deep && crcOK {
            do { _ = try scanner.decodeCurrent() } catch let error as LogError {
                if case let .corrupt(_, _, reason) = error { problems.append(reason) } else { throw error }
            }
        }
        if !problems.isEmpty { damage(path, position, header.baseOffset, problems.joined(separator: "; ")) }
        report.batches += 1
        report.events += Int64(header.recordCount)
        report.bytes += Int64(header.batchLength)
        nextOffset = header.nextOffset
        self.previous = header.chain
        if let expected, expected.endOffset == nextOffset {
            expectedHeadSeen = true
            if header.chain != expected.chain {
                damage(path, position, header.baseOffset,
                       "the chain hash at end offset \(nextOffset) is \(header.chain), the expected head says \(expected.chain): history up to there was rewritten")
            }
        }
        unreported += Int64(header.batchLength)
        if unreported >= 8 << 20 {
            progress(unreported)
            unreported = 0
        }
    }

    private mutating func checkExpectedHead() {
        guard let expected, !expectedHeadSeen else { return }
        if expected.endOffset == 0 {
            if expected.chain != ChainHash.genesis(logID: manifest.logID, partition: number) {
                damage(directory, 0, 0, "the expected head of the empty partition is not its genesis hash")
            }
        } else if nextOffset < expected.endOffset {
            damage(directory, 0, nextOffset, "the partition ends at offset \(nextOffset), but the expected head is at offset \(expected.endOffset): events were removed")
        } else {
            damage(directory, 0, expected.endOffset, "no batch ends at offset \(expected.endOffset), where the expected head is: batches were rewritten")
        }
    }

    /// The next place after `position` where a batch with a valid header and CRC starts
    /// (`batch` true), or, with `nonZero`, where any non-zero byte is (`batch` false when
    /// no batch follows it); nil when there is none.
    private func nextBatch(_ file: any StorageFile, after position: Int64, size: Int64, nonZero: Bool) throws -> (position: Int64, batch: Bool)? {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var at = position + (nonZero ? 0 : 1)
        var firstNonZero: Int64?
        while at < size {
            let n = try chunk.withUnsafeMutableBytes { (raw) throws -> Int in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(min(Int64(raw.count), size - at))]), at: at)
            }
            if n == 0 { break }
            for i in 0..<n where chunk[i] != 0 {
                if firstNonZero == nil { firstNonZero = at + Int64(i) }
                // "BKLG": a candidate header; it counts only if it parses and its CRC holds.
                guard chunk[i] == 0x42, i + 4 > n || (chunk[i + 1] == 0x4B && chunk[i + 2] == 0x4C && chunk[i + 3] == 0x47) else { continue }
                var candidate = SegmentScanner(file: file, from: at + Int64(i), limit: size, bufferBytes: 4096)
                if case .batch = try candidate.next(), try candidate.verifyCurrent() { return (at + Int64(i), true) }
            }
            at += Int64(n)
        }
        return firstNonZero.map { ($0, false) }
    }
}
