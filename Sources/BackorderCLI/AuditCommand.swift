import ArgumentParser
import EventLog
import Foundation

/// `backorder audit`: tools that answer an auditor's questions from the log alone
/// (docs/AUDIT.md).
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify the log's hash chain, trace a record's history, export events, answer queries as of a time.",
        subcommands: [AuditVerify.self, AuditHead.self, AuditHistory.self, AuditExport.self, AuditAsOf.self])
}

/// Runs the chain verifier with a progress line on a terminal.
func verifyLog(_ data: DataOptions, deep: Bool, expecting heads: ChainHeads?, showProgress: Bool) throws -> (ChainVerifier.Report, Double) {
    // JetStream keeps no hash chain: its servers checksum their own files.
    try data.requireEmbedded("audit verify/head")
    let progress = ProgressLine(enabled: showProgress && isatty(2) != 0)
    let read = ByteCounter()
    let start = MonotonicTime.now
    let report = try ChainVerifier(path: data.logPath, deep: deep).verify(expecting: heads) { bytes in
        let total = read.add(bytes)
        let seconds = MonotonicTime.now.seconds(since: start)
        progress.update("verified \(total >> 20) MiB (\(String(format: "%.2f", Double(total) / max(seconds, 1e-9) / 1e9)) GB/s)")
    }
    progress.finish()
    return (report, MonotonicTime.now.seconds(since: start))
}

/// A byte total shared by the verifier's threads (and the progress line they update).
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total: Int64 = 0

    /// Adds `bytes` and returns the new total; serializes the caller's use of the result too.
    func add(_ bytes: Int64) -> Int64 {
        lock.lock()
        defer { lock.unlock() }
        total += bytes
        return total
    }
}

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every CRC, base offset and hash-chain link of every partition; report all damage or \"intact\" with the heads.")
    @OptionGroup var data: DataOptions
    @Option(help: "A heads file (from `audit head` or --write-head) the log must still match.") var expectHead: String?
    @Option(help: "Write the heads to this file when the log is intact.") var writeHead: String?
    @Flag(help: "Also decompress every batch and check its record framing (slower).") var deep = false

    func run() async throws {
        try await runReportingErrors {
            var expected: ChainHeads?
            if let expectHead {
                guard let text = try? String(contentsOfFile: expectHead, encoding: .utf8) else {
                    printError("error: cannot read heads file \(expectHead)")
                    throw ExitCode(1)
                }
                expected = try ChainHeads.parse(text, path: expectHead)
            }
            let (report, seconds) = try verifyLog(data, deep: deep, expecting: expected, showProgress: true)
            let events = report.partitions.reduce(Int64(0)) { $0 + $1.events }
            let batches = report.partitions.reduce(0) { $0 + $1.batches }
            let segments = report.partitions.reduce(0) { $0 + $1.segments }
            let bytes = report.partitions.reduce(Int64(0)) { $0 + $1.bytes }
            let rate = String(format: "%.2f GB/s", Double(bytes) / max(seconds, 1e-9) / 1e9)
            let kind = report.chained ? "hash-chained" : "format \(report.manifest.version): no hash chain, CRCs and offsets only"
            let besideWriter = report.partitions.compactMap { p in p.endedBesideWriter.map { "partition \(p.partition) to offset \($0)" } }
            let summary = "\(report.partitions.count) partitions (\(kind)), \(segments) segments, \(events) events in \(batches) batches, \(bytes) bytes in \(String(format: "%.3f", seconds)) s (\(rate))"
                + (besideWriter.isEmpty ? "" : "; beside a writer, checked \(besideWriter.joined(separator: ", ")) (its acknowledged end: what follows was being written)")
            let damage = report.damage
            if !damage.isEmpty {
                for item in damage { print("DAMAGED \(item)") }
                print("checked \(summary)")
                printError("error: \(damage.count) problem(s) found in \(data.logPath)")
                throw ExitCode(1)
            }
            print("intact: \(summary)\(expected == nil ? "" : "; matches the expected heads")")
            print(report.heads.text, terminator: "")
            if let writeHead {
                do { try report.heads.text.write(toFile: writeHead, atomically: true, encoding: .utf8) } catch {
                    printError("error: cannot write \(writeHead): \(error.localizedDescription)")
                    throw ExitCode(1)
                }
                printError("heads written to \(writeHead): keep a copy where the log's writers cannot change it")
            }
        }
    }
}

struct AuditHead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head",
        abstract: "Verify the log, then print its heads (per partition: end offset and chain hash) to sign off and keep elsewhere.")
    @OptionGroup var data: DataOptions

    func run() async throws {
        try await runReportingErrors {
            let (report, _) = try verifyLog(data, deep: false, expecting: nil, showProgress: true)
            let damage = report.damage
            guard damage.isEmpty else {
                for item in damage { printError("DAMAGED \(item)") }
                printError("error: the log is damaged (\(damage.count) problem(s)); its heads are not signed off — run `backorder audit verify`")
                throw ExitCode(1)
            }
            print(report.heads.text, terminator: "")
        }
    }
}
