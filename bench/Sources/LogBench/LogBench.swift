#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventLog

/// LogBench: throughput and latency of the EventLog write-ahead log, next to what the
/// disk itself can do, as a Markdown table. See bench/README.md.
@main
struct LogBench {
    static func main() async {
        do {
            guard let settings = try Settings.parse(Array(CommandLine.arguments.dropFirst())) else { return }
            try await run(settings)
        } catch {
            printError("LogBench: \(error)")
            exit(1)
        }
    }

    static func run(_ s: Settings) async throws {
        let machine = MachineInfo.read(directory: s.directory)
        var preamble: [String] = []
        preamble.append("- date: \(todayUTC())")
        preamble.append("- machine: \(machine.cpus) × \(machine.cpuModel), \(fixed(machine.memoryGiB, 1)) GiB RAM, \(machine.fileSystem) at \(s.directory), Linux \(machine.kernel)")
        preamble.append("- command: `\(CommandLine.arguments.joined(separator: " "))`")
        preamble.append("- EventLog source tree when the run started (the binary holds what was there at build time): \(eventLogRevision(repository: repositoryRoot()))")
        preamble.append("- each throughput figure is the median of \(s.repeats) run(s), each in a fresh log directory")
        preamble.append("- batched appends: \(grouped(s.records)) records of which \(grouped(recordsPerBatch)) a batch, \(s.window) appends in flight; single appends: \(grouped(s.latencyAppends)); group commit: \(s.callers) × \(grouped(s.perCaller))")

        progress("generating \(grouped(s.poolSize)) events")
        let pool = EventPool(count: s.poolSize)
        preamble.append("- events: key \(fixed(pool.meanKeyBytes, 1)) B + JSON value \(fixed(pool.meanValueBytes, 1)) B = \(fixed(pool.meanRecordBytes, 1)) B a record on average (\(grouped(pool.count)) distinct, cycled); MB = 10⁶ bytes")
        preamble.append("- CRC32C hardware accelerated: \(CRC32C.isHardwareAccelerated); load average before the run: \(loadAverage())")
        for line in preamble { progress(line) }

        var rows: [Row] = []
        func add(_ row: Row) {
            progress("| " + row.cells.joined(separator: " | ") + " |")
            rows.append(row)
        }

        // (7) first, so that the log rows can be expressed as a fraction of it. Without
        // section 7 (--only), a token measurement of 16 flushes still gives the fractions.
        progress("(7) disk limit")
        let limitFlushes = s.runs(7) ? s.limitFlushes : 16
        let limitDirectory = try makeTemporaryDirectory(base: s.directory)
        defer { removeTree(limitDirectory) }
        settleFileSystem(s.directory)
        let limit64 = try DiskLimit.measure(directory: limitDirectory, writeBytes: 64 << 10, flushes: limitFlushes, measureRead: true)
        settleFileSystem(s.directory)
        let limit4 = try DiskLimit.measure(directory: limitDirectory, writeBytes: 4 << 10, flushes: limitFlushes)
        settleFileSystem(s.directory)
        let limit1M = try DiskLimit.measure(directory: limitDirectory, writeBytes: 1 << 20, flushes: max(16, limitFlushes / 8))
        removeTree(limitDirectory)
        for (id, limit) in [("7", limit64), ("7b", limit4), ("7c", limit1M)] where s.runs(7) {
            var details = "\(grouped(limit.flushes)) × pwrite \(sizeName(limit.writeBytes)) + fdatasync, pre-zeroed file; \(grouped(Int(limit.flushesPerSecond))) flushes/s, max \(fixed(limit.latencies.maxMs, 3)) ms"
            if let read = limit.readMBPerSecond { details += "; cold sequential read (1 MiB preads) \(grouped(Int(read))) MB/s" }
            add(Row(id: id, measurement: "machine limit: sequential \(sizeName(limit.writeBytes)) pwrite + fdatasync",
                    result: "\(grouped(Int(limit.megabytesPerSecond))) MB/s; flush p50 \(fixed(limit.latencies.ms(50), 3)) ms, p99 \(fixed(limit.latencies.ms(99), 3)) ms",
                    details: details, goal: "(reference)", verdict: "", versusLimit: ""))
        }

        if s.runs(1) || s.runs(2) {
            let buildRate = try buildOnly(records: min(s.records, 1_000_000), pool: pool)
            add(Row(id: "0a", measurement: "CPU reference: RecordBatchBuilder.append only (no log)",
                    result: "\(grouped(Int(buildRate))) records/s", details: "one core, 1,000-record batches; the producer's share of (1)–(2)",
                    goal: "(reference)", verdict: "", versusLimit: ""))
            let hashDirectory = try makeTemporaryDirectory(base: s.directory)
            defer { removeTree(hashDirectory) }
            let hashRate = try await partitionerOnly(directory: hashDirectory + "/log", records: min(s.records, 1_000_000), pool: pool)
            removeTree(hashDirectory)
            add(Row(id: "0b", measurement: "CPU reference: WriteAheadLog.partition(forKey:) only",
                    result: "\(grouped(Int(hashRate.log))) keys/s",
                    details: "one core, 13-byte keys, 8 partitions; the producer's extra work in the 8-partition runs. Partitioner.partition(forKey:partitionCount:) called directly: \(grouped(Int(hashRate.partitioner))) keys/s",
                    goal: "(reference)", verdict: "", versusLimit: ""))
        }

        // (1), (2), (5), (6)
        var scanRows: [Row] = []
        var sizeRows: [Row] = []
        var codecs: [Codec] = []
        if s.runs(1) || s.runs(5) || s.runs(6) { codecs.append(.lz4) }
        if s.runs(2) || s.runs(6) { codecs += [.zstd, .none] }
        for codec in codecs {
            for partitions in [1, 8] {
                // Each configuration runs `repeats` times in a fresh directory; the median
                // run (by records/s) is reported, and the last run's log is scanned.
                var runs: [AppendRun] = []
                var directory = ""
                defer { removeTree(directory) } // the current value at scope exit
                for repetition in 0..<s.repeats {
                    if !directory.isEmpty { removeTree(directory) }
                    directory = try makeTemporaryDirectory(base: s.directory)
                    settleFileSystem(s.directory)
                    progress("(\(codec == .lz4 ? 1 : 2)) batched append, \(codec), \(partitions) partition(s), run \(repetition + 1) of \(s.repeats)")
                    runs.append(try await batchedAppend(directory: directory + "/log", codec: codec, partitions: partitions,
                                                        records: s.records, window: s.window, pool: pool))
                    let last = runs[runs.count - 1]
                    progress("    \(grouped(Int(last.recordsPerSecond))) records/s in \(fixed(last.seconds, 2)) s, CPU \(fixed(last.coresBusy, 2)) cores, rest of the machine \(fixed(last.othersCores, 2))")
                }
                let ranked = runs.sorted { $0.recordsPerSecond < $1.recordsPerSecond }
                let run = ranked[ranked.count / 2]
                let spread = runs.count > 1
                    ? "median of \(runs.count) runs (\(grouped(Int(ranked.first!.recordsPerSecond)))–\(grouped(Int(ranked.last!.recordsPerSecond)))); "
                    : ""
                let goal = 2_000_000.0
                if s.runs(codec == .lz4 ? 1 : 2) {
                    add(Row(id: codec == .lz4 ? "1" : "2",
                            measurement: "batched append, \(codec), fsync, \(partitions) partition\(partitions == 1 ? "" : "s")",
                            result: "\(grouped(Int(run.recordsPerSecond))) records/s, \(grouped(Int(run.rawMBPerSecond))) MB/s",
                            details: spread + "\(grouped(run.records)) records in \(fixed(run.seconds, 2)) s, \(grouped(run.batches)) batches, \(run.segments) segments; \(grouped(Int(run.diskMBPerSecond))) MB/s to disk; CPU \(fixed(run.coresBusy, 2)) of \(machine.cpus) cores (rest of the machine \(fixed(run.othersCores, 2)))",
                            goal: "≥ 2,000,000 records/s", verdict: verdict(run.recordsPerSecond / goal),
                            versusLimit: "disk MB/s = \(percent(run.diskMBPerSecond / limit64.megabytesPerSecond)) of (7), \(percent(run.diskMBPerSecond / limit1M.megabytesPerSecond)) of (7c)"))
                }
                if partitions == 1 {
                    let perRecord = Double(run.segmentBytes) / Double(run.records)
                    sizeRows.append(Row(id: "6", measurement: "size on disk, \(codec)",
                                        result: "\(fixed(perRecord, 1)) B/record, ratio \(fixed(Double(run.rawBytes) / Double(run.segmentBytes), 2))",
                                        details: "raw key+value \(fixed(Double(run.rawBytes) / Double(run.records), 1)) B/record; segments \(grouped(Int(run.segmentBytes))) B (96 B batch headers included); whole directory with indexes \(fixed(Double(run.directoryBytes) / Double(run.records), 1)) B/record",
                                        goal: "(information)", verdict: "", versusLimit: ""))
                }
                // (5): the lz4 logs are the ones (1) asks for; zstd and none for comparison.
                if s.runs(5) {
                    var hot: [ScanRun] = []
                    for repetition in 0..<s.repeats {
                        settleFileSystem(s.directory)
                        progress("(5) scan, \(codec), \(partitions) partition(s), page cache, run \(repetition + 1) of \(s.repeats)")
                        hot.append(try await scan(directory: directory + "/log", expectedRecords: s.records))
                    }
                    scanRows.append(scanRow(hot, codec: codec, partitions: partitions, cache: "page cache (hot)", limit: nil))
                    if codec == .lz4 {
                        var cold: [ScanRun] = []
                        for repetition in 0..<s.repeats {
                            evictFromPageCache(directory + "/log")
                            progress("(5) scan, \(codec), \(partitions) partition(s), from disk, run \(repetition + 1) of \(s.repeats)")
                            cold.append(try await scan(directory: directory + "/log", expectedRecords: s.records))
                        }
                        scanRows.append(scanRow(cold, codec: codec, partitions: partitions, cache: "from disk (fadvise DONTNEED)", limit: limit64.readMBPerSecond))
                    }
                }
            }
        }
        for row in (s.runs(5) ? scanRows : []) + (s.runs(6) ? sizeRows : []) { add(row) }

        // (3)
        if s.runs(3) {
            let directory = try makeTemporaryDirectory(base: s.directory)
            defer { removeTree(directory) }
            settleFileSystem(s.directory)
            progress("(3) single-record appends")
            let (latency, others) = try await singleAppendLatency(directory: directory + "/log", appends: s.latencyAppends, warmup: s.latencyWarmup, pool: pool)
            add(Row(id: "3", measurement: "single-record append, lz4, fsync, 1 caller awaiting each",
                    result: "p50 \(fixed(latency.ms(50), 3)) ms, p99 \(fixed(latency.ms(99), 3)) ms, p99.9 \(fixed(latency.ms(99.9), 3)) ms",
                    details: "\(grouped(latency.count)) appends after \(s.latencyWarmup) warm-up; mean \(fixed(latency.meanMs, 3)) ms, max \(fixed(latency.maxMs, 3)) ms; \(grouped(Int(1000 / latency.meanMs))) appends/s; rest of the machine \(fixed(others, 2)) cores",
                    goal: "p99 ≤ 0.5 ms", verdict: verdict(0.5 / latency.ms(99)),
                    versusLimit: "bare 4 KiB flush (7b) p50 \(fixed(limit4.latencies.ms(50), 3)) / p99 \(fixed(limit4.latencies.ms(99), 3)) ms: append = \(fixed(latency.ms(50) / limit4.latencies.ms(50), 2))× / \(fixed(latency.ms(99) / limit4.latencies.ms(99), 2))×"))
            removeTree(directory)
        }

        // (4)
        if s.runs(4) {
            var runs: [GroupCommitRun] = []
            for repetition in 0..<s.repeats {
                let directory = try makeTemporaryDirectory(base: s.directory)
                defer { removeTree(directory) }
                settleFileSystem(s.directory)
                progress("(4) group commit, run \(repetition + 1) of \(s.repeats)")
                runs.append(try await groupCommit(directory: directory + "/log", callers: s.callers, perCaller: s.perCaller, pool: pool))
            }
            let ranked = runs.sorted { $0.recordsPerSecond < $1.recordsPerSecond }
            let run = ranked[ranked.count / 2]
            let spread = runs.count > 1
                ? "median of \(runs.count) runs (\(grouped(Int(ranked.first!.recordsPerSecond)))–\(grouped(Int(ranked.last!.recordsPerSecond)))); "
                : ""
            // Ideal group commit: every flush carries one record of each caller, at the
            // rate the disk does 64 KiB flushes.
            let ideal = Double(s.callers) * limit64.flushesPerSecond
            add(Row(id: "4", measurement: "group commit: \(s.callers) callers × single-record appends, lz4, fsync, 1 partition",
                    result: "\(grouped(Int(run.recordsPerSecond))) records/s",
                    details: spread + "\(grouped(run.records)) appends in \(fixed(run.seconds, 2)) s, CPU \(fixed(run.coresBusy, 2)) cores (rest of the machine \(fixed(run.othersCores, 2))); per-append p50 \(fixed(run.latencies.ms(50), 3)) ms, p99 \(fixed(run.latencies.ms(99), 3)) ms, p99.9 \(fixed(run.latencies.ms(99.9), 3)) ms",
                    goal: "≥ 100,000 records/s", verdict: verdict(run.recordsPerSecond / 100_000),
                    versusLimit: "\(percent(run.recordsPerSecond / ideal)) of \(s.callers) × (7) flushes/s = \(grouped(Int(ideal))) records/s"))
        }

        // (7) again, to show whether the disk (shared with other work) changed during the run.
        if s.runs(7) {
            let directory = try makeTemporaryDirectory(base: s.directory)
            defer { removeTree(directory) }
            settleFileSystem(s.directory)
            progress("(7) disk limit again")
            let again = try DiskLimit.measure(directory: directory, writeBytes: 64 << 10, flushes: s.limitFlushes)
            add(Row(id: "7′", measurement: "machine limit again at the end: sequential 64 KiB pwrite + fdatasync",
                    result: "\(grouped(Int(again.megabytesPerSecond))) MB/s; flush p50 \(fixed(again.latencies.ms(50), 3)) ms, p99 \(fixed(again.latencies.ms(99), 3)) ms",
                    details: "\(percent(again.megabytesPerSecond / limit64.megabytesPerSecond)) of the first measurement; a large difference means other load on the disk or CPUs disturbed the run",
                    goal: "(reference)", verdict: "", versusLimit: ""))
            removeTree(directory)
        }

        let sorted = rows.enumerated().sorted { a, b in
            let ka = sortKey(a.element.id), kb = sortKey(b.element.id)
            return ka != kb ? ka < kb : a.offset < b.offset
        }.map(\.element)
        var lines = preamble
        lines.append("- load average after the run: \(loadAverage())")
        lines.append("")
        lines.append("| # | Measurement | Result | Details | Goal | vs goal | vs machine limit |")
        lines.append("|---|---|---|---|---|---|---|")
        for row in sorted { lines.append("| " + row.cells.joined(separator: " | ") + " |") }
        let text = lines.joined(separator: "\n") + "\n"
        print(text, terminator: "")
        if let out = s.outputFile { try writeTextFile(out, text) }
    }

    /// Table order: 0a, 0b, 1, 2, 3, 4, 5, 6, then the machine limits 7, 7b, 7c, 7′.
    static func sortKey(_ id: String) -> Int {
        switch id {
        case "0a": -2
        case "0b": -1
        case "1": 1
        case "2": 2
        case "3": 3
        case "4": 4
        case "5": 5
        case "6": 6
        case "7": 7
        case "7b": 8
        case "7c": 9
        default: 10
        }
    }

    static func scanRow(_ runs: [ScanRun], codec: Codec, partitions: Int, cache: String, limit: Double?) -> Row {
        let ranked = runs.sorted { $0.recordsPerSecond < $1.recordsPerSecond }
        let run = ranked[ranked.count / 2]
        let spread = runs.count > 1
            ? "median of \(runs.count) (\(grouped(Int(ranked.first!.recordsPerSecond)))–\(grouped(Int(ranked.last!.recordsPerSecond)))); "
            : ""
        return Row(id: "5", measurement: "sequential scan, \(codec), \(partitions) partition\(partitions == 1 ? "" : "s"), \(cache)",
            result: "\(grouped(Int(run.recordsPerSecond))) records/s, \(fixed(run.gigabytesPerSecond, 2)) GB/s",
            details: spread + "\(grouped(run.records)) records, \(grouped(run.batches)) batches, \(grouped(run.segmentBytes)) B in \(fixed(run.seconds, 3)) s; CRC + decompress + forEach; CPU \(fixed(run.coresBusy, 2)) cores (rest of the machine \(fixed(run.othersCores, 2)))",
            goal: "≥ 5,000,000 records/s", verdict: verdict(run.recordsPerSecond / 5_000_000),
            versusLimit: limit.map { "segment MB/s = \(percent(run.gigabytesPerSecond * 1000 / $0)) of cold read (7)" } ?? "not disk-bound (page cache)")
    }
}

struct Row {
    let id: String
    let measurement: String
    let result: String
    let details: String
    let goal: String
    let verdict: String
    let versusLimit: String
    var cells: [String] { [id, measurement, result, details, goal, verdict, versusLimit] }
}

/// "met" or "missed (x % of goal)" from achieved/goal (higher is better).
func verdict(_ ratio: Double) -> String {
    ratio >= 1 ? "met (\(fixed(ratio, 2))×)" : "**missed** (\(percent(ratio)) of goal)"
}

struct Settings {
    var records = 2_000_000
    var quick = false
    var outputFile: String?
    var window = 4
    var directory = "/tmp"
    var latencyAppends = 5_000
    var latencyWarmup = 100
    var callers = 64
    var perCaller = 2_000
    var limitFlushes = 2_048
    var poolSize = 1 << 18
    /// Runs of each throughput measurement (the median is reported).
    var repeats = 3
    /// Sections to run (1...7); nil: all. The disk limit (7) always runs.
    var only: Set<Int>?

    func runs(_ section: Int) -> Bool { only?.contains(section) ?? true }

    static let usage = """
    usage: LogBench [--records N] [--quick] [--out FILE] [--window N] [--repeat N] [--dir DIR] [--only LIST]
      --records N   records of each batched-append run (default 2,000,000; --quick: 200,000)
      --quick       everything 10× smaller (a smoke test, not a measurement)
      --out FILE    also write the Markdown table to FILE
      --window N    appends in flight in the batched runs (default 4)
      --repeat N    runs of each throughput measurement, median reported (default 3; --quick: 1)
      --dir DIR     where the temporary directories go (default /tmp)
      --only LIST   run only these sections, e.g. --only 1,5 (for profiling; without 7 the
                    machine-limit fractions come from a token 16-flush measurement)
    """

    static func parse(_ arguments: [String]) throws -> Settings? {
        var s = Settings()
        var records: Int?
        var repeats: Int?
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw BenchError("\(arguments[i - 1]) needs a value\n\(usage)") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--records":
                guard let n = Int(try value().replacingUnderscores()), n > 0 else { throw BenchError("--records needs a positive number") }
                records = n
            case "--quick": s.quick = true
            case "--out": s.outputFile = try value()
            case "--window":
                guard let n = Int(try value()), n > 0 else { throw BenchError("--window needs a positive number") }
                s.window = n
            case "--dir": s.directory = try value()
            case "--repeat":
                guard let n = Int(try value()), n > 0 else { throw BenchError("--repeat needs a positive number") }
                repeats = n
            case "--only":
                let list = try value().split(separator: ",").compactMap { Int($0) }
                guard !list.isEmpty, list.allSatisfy({ (1...7).contains($0) }) else { throw BenchError("--only needs a list of sections 1...7") }
                s.only = Set(list)
            case "-h", "--help":
                print(usage)
                return nil
            default: throw BenchError("unknown argument \(arguments[i])\n\(usage)")
            }
            i += 1
        }
        if s.quick {
            s.records /= 10
            s.latencyAppends /= 10
            s.latencyWarmup /= 5
            s.perCaller /= 10
            s.limitFlushes /= 8
            s.poolSize >>= 2
        }
        if let records { s.records = records }
        s.repeats = repeats ?? (s.quick ? 1 : 3)
        return s
    }
}

extension String {
    func replacingUnderscores() -> String { String(filter { $0 != "_" && $0 != "," }) }
}

// MARK: Formatting (no Foundation)

func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

func fixed(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return String(x) }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((abs(x) * scale).rounded())
    let whole = scaled / Int(scale), fraction = scaled % Int(scale)
    var text = grouped(whole)
    if decimals > 0 {
        let f = String(fraction)
        text += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return (x < 0 && scaled != 0 ? "-" : "") + text
}

func percent(_ ratio: Double) -> String { fixed(ratio * 100, ratio < 0.1 ? 1 : 0) + " %" }

func sizeName(_ bytes: Int) -> String {
    bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
}

/// Progress on standard error (unbuffered write(2), so it interleaves sanely).
func progress(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + done, bytes.count - done) }
        if n <= 0 { return }
        done += n
    }
}

func printError(_ line: String) { progress(line) }

func writeTextFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw errnoError("open", path) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw errnoError("write", path) }
        done += n
    }
}

/// The root package's directory: this file is <root>/bench/Sources/LogBench/LogBench.swift.
func repositoryRoot(file: String = #filePath) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)
    return parts.joined(separator: "/")
}
