import DataGenerator
import Foundation
import Testing
@testable import EventLog
@testable import EventStore
@testable import OutOfStock
@testable import Projections
import RecordsView
import KVStore

/// Seeded mutations of valid and invalid inputs, for the readers of untrusted bytes.
struct Mutator {
    var random: SplitMix64
    /// Tokens that parsers get wrong.
    static let tokens: [[UInt8]] = ["\"", "\\", "{", "}", "[", "]", ",", ":", "null", "true", "1e999", "-0", "\\u0000",
                                    "\\ud800", "\\uDFFF", "99999999999999999999", "\n", "\r", " ", "\u{0}", "é", "🧦"].map { Array($0.utf8) }
        + [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xEF, 0xBB, 0xBF]]

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    /// One to four random edits of `bytes`; `other` is spliced in by some of them.
    mutating func mutate(_ bytes: [UInt8], other: [UInt8] = []) -> [UInt8] {
        var out = bytes
        for _ in 0..<int(1...4) {
            let at = out.isEmpty ? 0 : int(0...(out.count - 1))
            switch int(0...8) {
            case 0 where !out.isEmpty: out[at] ^= UInt8(1 << int(0...7))                       // bit flip
            case 1 where !out.isEmpty: out[at] = UInt8(truncatingIfNeeded: int(0...255))      // byte set
            case 2: out.insert(UInt8(truncatingIfNeeded: int(0...255)), at: at)              // byte insert
            case 3 where !out.isEmpty: out.removeSubrange(at..<min(out.count, at + int(1...16))) // delete
            case 4 where !out.isEmpty:                                                        // duplicate a range
                let end = min(out.count, at + int(1...32))
                out.insert(contentsOf: out[at..<end], at: int(0...out.count))
            case 5: out.insert(contentsOf: Self.tokens[int(0...(Self.tokens.count - 1))], at: at) // token
            case 6 where !other.isEmpty:                                                      // splice
                let from = int(0...(other.count - 1))
                out.replaceSubrange(at..<min(out.count, at + int(0...24)), with: other[from..<min(other.count, from + int(1...48))])
            case 7: out = Array(out.prefix(at))                                              // truncate
            default: if !out.isEmpty { out[at] = [0x00, 0xFF, 0x7F, 0x80][int(0...3)] }    // boundary bytes
            }
        }
        return out
    }
}

/// The committed corpus (`Tests/Corpus`), found beside this file.
enum Corpus {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Corpus")

    static func ndjsonLines() throws -> [[UInt8]] {
        let folder = directory.appendingPathComponent("ndjson")
        var lines: [[UInt8]] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where name.hasSuffix(".ndjson") {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            lines += data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        }
        return lines
    }
}

/// Mutation fuzzing (bounded, in the suite): the NDJSON parser and ingestor, the segment
/// reader (log open, cursors, SegmentInspector) and the snapshot reader take mutated
/// inputs and either accept them or reject them with an error that says where; they never
/// trap or hang. `BACKORDER_FUZZ_ITERATIONS` scales every pass (`make soak`).
@Suite struct FuzzTests {
    static let scale = Int(ProcessInfo.processInfo.environment["BACKORDER_FUZZ_ITERATIONS"] ?? "") ?? 1

    @Test(.timeLimit(.minutes(10)))
    func ndjsonParserAcceptsOrRejectsEveryMutatedLine() throws {
        let corpus = try Corpus.ndjsonLines()
        #expect(corpus.count > 50, "the corpus is in Tests/Corpus/ndjson")
        let parser = try InputParser()
        var mutator = Mutator(seed: 0x5EED_0001)
        var accepted = 0, rejected = 0
        for i in 0..<(20_000 * Self.scale) {
            let line = mutator.mutate(corpus[i % corpus.count], other: corpus[mutator.int(0...(corpus.count - 1))])
            let result = line.withUnsafeBytes { parser.parse($0, line: 17) }
            switch result {
            case .success: accepted += 1
            case let .failure(error):
                rejected += 1
                #expect(error.line == 17 && !error.message.isEmpty && !error.description.isEmpty,
                        "mutation \(i): an error must name the line and say what is wrong: \(error)")
            }
        }
        #expect(accepted > 0 && rejected > 0)
        print("fuzz ndjson parser: \(accepted + rejected) mutated lines, \(accepted) accepted, \(rejected) rejected with a line and a reason")
    }

    @Test(.timeLimit(.minutes(10)))
    func ingestorReportsEveryMutatedLineByNumber() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try Corpus.ndjsonLines()
        var mutator = Mutator(seed: 0x5EED_0002)
        var options = StoreOptions()
        options.log.partitionCount = 2
        let store = try await EventStore.open(at: dir + "/store", options: options)
        var lines = 0, rejected = 0
        for round in 0..<(12 * Self.scale) {
            // Mutated lines and whole-file damage (lines joined, cut, CRs, NULs).
            let count = mutator.int(50...300)
            var text: [UInt8] = []
            for _ in 0..<count {
                let seed = corpus[mutator.int(0...(corpus.count - 1))]
                text += (mutator.int(0...3) == 0 ? seed : mutator.mutate(seed)) + [UInt8(ascii: "\n")]
            }
            if round % 3 == 2 { text = mutator.mutate(text) }
            let path = "\(dir)/input-\(round).ndjson"
            try Data(text).write(to: URL(fileURLWithPath: path))
            let fd = open(path, O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            var reader = LineReader(fd: fd, name: path)
            var ingest = IngestOptions()
            ingest.dryRun = true
            ingest.maxReportedErrors = Int.max
            let report = try await Ingestor(store: store, options: ingest).ingest(&reader)
            let physical = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
            #expect(report.lines <= physical, "round \(round): \(report.lines) lines reported of \(physical)")
            for error in report.errors {
                #expect((1...max(1, physical)).contains(error.line) && !error.message.isEmpty, "round \(round): \(error)")
            }
            lines += report.lines
            rejected += report.rejected
        }
        try await store.close()
        print("fuzz ingestor: \(lines) lines in \(12 * Self.scale) mutated files, \(rejected) rejected, each by line number")
    }

    @Test(.timeLimit(.minutes(10)))
    func segmentReadersSurviveMutatedSegments() async throws {
        // In memory when possible: each round copies a log and fsyncs in a writable open.
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/backorder-fuzz-\(UUID().uuidString.prefix(8))" : freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A small log to mutate: two segments of lz4 and zstd batches.
        var base = LogOptions()
        base.partitionCount = 1
        base.segmentBytes = Limits.minSegmentBytes
        base.preallocationBytes = 4096
        base.recoveryCheckpointBytes = 8 << 10
        base.codec = .zstd
        let original = dir + "/original"
        let log = try await WriteAheadLog.open(at: original, options: base)
        var records: [Record] = []
        var random = SplitMix64(seed: 0x5E6)
        while records.count < 3_000 {
            var batch = RecordBatchBuilder()
            for _ in 0..<Int.random(in: 1...25, using: &random) {
                let noise = (0..<(records.count % 61)).map { _ in Character(UnicodeScalar(UInt8.random(in: 97...122, using: &random))) }
                let value = Array("{\"n\":\(records.count),\"pad\":\"\(String(noise))\"}".utf8)
                try batch.append(key: Array("k\(records.count % 9)".utf8), value: value, timestamp: Int64(records.count))
                records.append(Record(offset: Int64(records.count), timestamp: Int64(records.count), key: Array("k\(records.count % 9)".utf8), value: value))
            }
            _ = try await log.append(batch, partition: 0)
        }
        try await log.close()
        let partition = original + "/" + WriteAheadLog.partitionDirectoryName(0)
        let files = try FileManager.default.contentsOfDirectory(atPath: partition).filter { !$0.hasSuffix("LOCK") }.sorted()
        let segments = files.filter { $0.hasSuffix(".log") }
        #expect(segments.count >= 2)
        var mutator = Mutator(seed: 0x5EED_0003)
        var readOnly = LogOptions()
        readOnly.writable = false
        var errors = 0, intactReads = 0, restamped = 0
        for i in 0..<(300 * Self.scale) {
            let copy = "\(dir)/copy"
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: original, toPath: copy)
            let copyPartition = copy + "/" + WriteAheadLog.partitionDirectoryName(0)
            // Mostly segments; sometimes the recovery point, the index files or the manifest.
            let target: String
            switch mutator.int(0...9) {
            case 0: target = copy + "/" + Manifest.fileName
            case 1: target = copyPartition + "/" + files[mutator.int(0...(files.count - 1))]
            default: target = copyPartition + "/" + segments[mutator.int(0...(segments.count - 1))]
            }
            var bytes = readFile(target)
            bytes = mutator.mutate(bytes)
            var restampedNow = false
            // Half the time, re-stamp the checksum of every batch whose framing survived, so
            // that the decoders behind the CRC get damaged input too.
            if target.hasSuffix(".log"), mutator.int(0...1) == 0 {
                var position = 0
                // The chain too, from wherever the previous batch's link says (the fuzz is
                // about the decoders behind the checks, not about the chain).
                var previous = ChainHash.zero
                while position + BatchHeader.size <= bytes.count {
                    let length = Int(ByteCoding.load(UInt32.self, from: bytes, at: position + BatchHeader.lengthAt))
                    guard length >= BatchHeader.size, position + length <= bytes.count else { break }
                    let baseOffset = ByteCoding.load(Int64.self, from: bytes, at: position + BatchHeader.baseOffsetAt)
                    bytes.withUnsafeMutableBytes { raw in
                        if let start = raw.baseAddress {
                            previous = BatchHeader.stamp(baseOffset: baseOffset, previous: previous, batch: start + position, length: length)
                        }
                    }
                    position += length
                }
                restamped += 1
                restampedNow = true
            }
            writeFile(target, bytes)
            // Read-only open and a full read: intact records, or an error that says where.
            do {
                let opened = try await WriteAheadLog.open(at: copy, options: readOnly)
                do {
                    var cursor = try opened.cursor(partition: 0, from: 0)
                    while let batch = try cursor.next() {
                        for record in batch.recordList() where record.offset < Int64(records.count) && record != records[Int(record.offset)] {
                            // Only possible when the damaged batch was re-stamped with a valid checksum.
                            #expect(restampedNow, "mutation \(i): a damaged record was returned as intact at offset \(record.offset)")
                        }
                        intactReads += 1
                    }
                } catch let error as LogError {
                    errors += 1
                    #expect(!error.description.isEmpty)
                }
                try await opened.close()
            } catch let error as LogError {
                errors += 1
                #expect(!error.description.isEmpty, "mutation \(i)")
            }
            // The inspector walks any file.
            if target.hasSuffix(".log") {
                do {
                    _ = try SegmentInspector.inspect(path: target) { _ in }
                } catch let error as LogError {
                    #expect(!error.description.isEmpty)
                }
            }
            // A writable open repairs or refuses; never traps.
            do {
                var writable = base
                writable.lockTimeoutMilliseconds = 0
                let repaired = try await WriteAheadLog.open(at: copy, options: writable)
                if var cursor = try? repaired.cursor(partition: 0, from: 0) { while (try? cursor.next()) != nil {} }
                try await repaired.close()
            } catch let error as LogError {
                #expect(!error.description.isEmpty)
            }
        }
        print("fuzz segments: \(300 * Self.scale) mutated log directories, \(errors) reported damage, \(intactReads) batches read intact, \(restamped) re-stamped checksums")
    }

    /// Mutated view files (table files and the manifest) are either rejected with an error
    /// that names the file, or — where the bytes a query reads were not touched — answer
    /// exactly as the intact view: never a crash, never a different answer.
    @Test(.timeLimit(.minutes(10)))
    func viewFilesRejectMutations() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (_, generated, _) = try runBackorder(["generate", "--events", "2000", "--seed", "3"])
        try generated.write(toFile: dir + "/in.ndjson", atomically: true, encoding: .utf8)
        #expect(try runBackorder(["append", dir + "/in.ndjson", "--data", dir + "/store", "--partitions", "2"]).0 == 0)
        let source = try await EventReader.open(at: dir + "/store")
        let access = try RecordsViewAccess.open(root: dir + "/store", source: source)
        let folder = access.view.directory.path(of: access.view.generation)
        func answers(_ snapshot: KVSnapshot) throws -> String {
            let q = RecordsQueries(snapshot: snapshot, tenant: "default")
            var filter = RecordFilter()
            filter.search = "co"
            return "\(try q.dashboard(range: TimeRange(), now: 1_800_000_000_000_000)) \(try q.records(filter)) \(try q.insights(by: .product, range: TimeRange(from: 0)))"
        }
        let expected = try answers(access.view.snapshot())
        try access.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sst") || $0 == "MANIFEST" }.sorted()
        var mutator = Mutator(seed: 0x5EED_0004)
        var rejected = 0, same = 0
        for i in 0..<(300 * Self.scale) {
            let name = files[i % files.count]
            let path = folder + "/" + name
            let good = readFile(path)
            writeFile(path, mutator.mutate(good))
            defer { writeFile(path, good) }
            do {
                let reader = try MaintainedView<RecordsProjector>.openReader(root: dir + "/store", source: source, options: RecordsViewAccess.options())
                defer { try? reader.close() }
                let got = try answers(reader.snapshot())
                #expect(got == expected, "mutation \(i) of \(name) changed an answer")
                same += 1
            } catch let error as KVError {
                rejected += 1
                #expect("\(error)".contains(name), "mutation \(i): the error must name \(name): \(error)")
            } catch let error as ViewError {
                rejected += 1
                #expect(name == "MANIFEST" || "\(error)".contains(name), "mutation \(i): \(error)")
            }
        }
        print("fuzz views: \(rejected + same) mutated view files, \(rejected) rejected naming the file, \(same) answered as before")
        #expect(rejected > 0)
    }
}

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
func writeFile(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
