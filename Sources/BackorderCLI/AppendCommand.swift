import ArgumentParser
import EventLog
import EventStore
import Foundation
import JetStreamStore
import OutOfStock
import RecordsView

/// `backorder append`: validate NDJSON events and append them.
struct AppendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Validate NDJSON events (one per line) and append them to the store.",
        discussion: """
            Every line is checked against the input contract (schemas/v1) and the domain's rules before \
            anything is written; by default one bad line means nothing is appended. Exit status: 0 all \
            appended (or duplicates), 1 input rejected or an error, 3 with --skip-invalid: some lines \
            rejected, the valid ones stored (appended now or before).
            """)

    @Argument(help: "NDJSON file, or - for standard input.") var input = "-"
    @OptionGroup var data: DataOptions
    @Option(help: "For a single-stream input: the stream's version before the first event.") var expectVersion: Int64?
    @Option(help: "fsync (default), interval[:MS] or none.") var durability = "fsync"
    @Option(help: "Events per store append (each partition's share is compressed as one log batch, or several past 8 MiB).") var batchSize = 10_000
    @Flag(help: "Print the result as JSON.") var json = false
    @Flag(help: "Validate only; append nothing.") var dryRun = false
    @Flag(help: "Append the valid lines; write the rejected ones, with reasons, to --rejected.") var skipInvalid = false
    @Option(help: "Where --skip-invalid writes rejected lines (NDJSON with the reason).") var rejected = "rejected.ndjson"
    @Option(help: "Partitions of a new store.") var partitions = 8
    @Flag(help: "Leave the views behind the log (the next query or append brings them up to date).") var skipViews = false
    @Option(help: "Seconds a line's `at` may be ahead of this machine's clock; later lines are rejected.") var maxClockSkew: Int64 = 3_600
    @Flag(help: "Accept lines dated any time in the future (no --max-clock-skew check).") var allowFutureTimes = false

    func run() async throws {
        guard let durability = Durability(parsing: durability) else { throw ValidationError("unknown durability \"\(self.durability)\": use fsync, interval[:MS] or none") }
        guard (0...(Int64.max / 1_000_000 / 2)).contains(maxClockSkew) else { throw ValidationError("--max-clock-skew must be 0...\(Int64.max / 1_000_000 / 2) seconds") }
        guard (1...StoreOptions().maxEventsPerBatch).contains(batchSize) else { throw ValidationError("--batch-size must be 1...\(StoreOptions().maxEventsPerBatch)") }
        let fd: Int32 = input == "-" ? 0 : open(input, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            printError("error: cannot read \(input): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { if fd != 0 { close(fd) } }
        var reader = LineReader(fd: fd, name: input == "-" ? "standard input" : input)

        let store: any EventAppender
        var closeStore: () async throws -> Void = {}
        var onCluster = false
        var embedded: EventStore?
        var jsonDurability = "\(durability)"
        do {
            if let cluster = data.clusterOptions(partitions: partitions) {
                let opened = try await JetStreamStore.open(cluster)
                store = opened
                closeStore = { try opened.saveIDCache() }
                onCluster = true
                jsonDurability = "jetstream-r\(opened.replicas)"
                if durability != .fsync { printError("note: --durability sets the embedded log's syncing; on the cluster an append is acknowledged as the stream's replication allows (below)") }
                if let skipped = opened.idLoad.cacheSkipped { printError("note: id cache not used: \(skipped); read the whole stream") }
                if !json {
                    let cached = opened.idLoad.cachedThrough.map { "cached through sequence \($0), " } ?? ""
                    printError("cluster: stream \(opened.streamName) (R\(opened.replicas), \(opened.partitionCount) partitions) on \(cluster.urls); "
                        + "\(opened.knownCounts.events) event ids of \(opened.knownCounts.streams) streams (\(cached)\(opened.idLoad.messagesRead) read from the stream)")
                }
            } else {
                var options = StoreOptions()
                options.log.durability = durability
                options.log.partitionCount = partitions
                let opened = try await EventStore.open(at: data.directory, options: options)
                for event in opened.log.recoveryEvents { printError("recovered: \(event)") }
                if let reason = opened.indexRebuildReason { printError("recovered: indexes rebuilt from the log (\(reason))") }
                store = opened
                embedded = opened
                closeStore = { try await opened.close() }
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        var ingestOptions = IngestOptions()
        ingestOptions.batchSize = batchSize
        ingestOptions.dryRun = dryRun
        ingestOptions.skipInvalid = skipInvalid
        ingestOptions.expectVersion = expectVersion
        ingestOptions.maxClockSkew = allowFutureTimes ? nil : maxClockSkew * 1_000_000
        let rejectedFile = RejectedLinesFile(path: rejected)
        if skipInvalid { ingestOptions.rejectedLineSink = { try rejectedFile.write($0, $1) } }
        let progress = ProgressLine(enabled: !json && isatty(2) != 0)
        // The views follow the log on a thread of their own while events are appended (the
        // embedded store; a cluster's views are brought up to date afterwards).
        var follower: ViewFollower?
        if let embedded, !skipViews && !dryRun {
            do { follower = try ViewFollower(root: data.viewsDirectory, source: embedded.reader) } catch {
                printError("warning: the views will not follow this append: \(error) (the next query catches up)")
            }
        }
        let start = MonotonicTime.now
        var report: IngestReport
        var poked = 0
        do {
            // Streams' states come from the view when it has them at the store's version.
            let lookup = follower?.openedSnapshot().map { ViewStateLookup(snapshot: $0) }
            report = try await Ingestor(store: store, options: ingestOptions, lookup: lookup).ingest(&reader) { bytes, appended in
                progress.update("read \(bytes / 1_000_000) MB, appended \(appended) events")
                if appended > poked {
                    poked = appended
                    follower?.poke()
                }
            }
        } catch {
            progress.finish()
            _ = try? follower?.finish()
            try? await closeStore()
            try? rejectedFile.finish()
            printError("error: \(error)")
            throw ExitCode(1)
        }
        progress.finish()
        let seconds = MonotonicTime.now.seconds(since: start)
        let viewsResult = follower.map { f in Result { try f.finish() } }
        let viewSeconds = MonotonicTime.now.seconds(since: start) - seconds
        // The appended events are durable either way; a failed index checkpoint only means the
        // next open rebuilds or catches the indexes up from the log.
        do { try await closeStore() } catch {
            let stored = onCluster || durability == .fsync ? "the appended events are stored"
                : "events appended since the log's last sync may not survive a power loss (--durability \(durability))"
            printError("warning: closing the store: \(error) (\(stored); "
                + (onCluster ? "the next append reads the stream's ids without the cache)" : "the index is caught up from the log on the next open)"))
        }
        let statement = store.durabilityStatement
        print(json ? jsonReport(report, seconds: seconds, durability: jsonDurability)
                   : humanReport(report, seconds: seconds, durability: statement, sequences: onCluster))
        switch viewsResult {
        case let .success((applied, reset))?:
            if let reset { printError("note: the records view was rebuilt from the log (\(reset))") }
            if !json { printError("views: applied \(applied) events; up to date \(String(format: "%.3f", viewSeconds)) s after the last append") }
        case let .failure(error)?:
            printError("warning: views not brought up to date: \(error) (the events are stored; the next query catches up)")
        case nil:
            if report.appended > 0 && !skipViews && embedded == nil { await updateViews() }
        }
        if skipInvalid {
            do { try rejectedFile.finish() } catch { printError("warning: could not write \(rejected): \(error)") }
        }
        if report.rejected > 0 {
            if !json {
                for error in report.errors.prefix(20) { printError("rejected: \(input == "-" ? "stdin" : input): \(error)") }
                if report.rejected > 20 { printError("… and \(report.rejected - 20) more rejected lines") }
                if !report.applied && !dryRun && !skipInvalid { printError("nothing was appended: fix the input, or use --skip-invalid to append the valid lines") }
            }
            // With --skip-invalid, 3 whenever the valid lines are stored — appended now or
            // already (a second run of the same input): the status must not depend on which.
            let validLinesStored = skipInvalid && !dryRun && report.lines > report.rejected
            throw ExitCode(validLinesStored ? 3 : 1)
        }
    }

    /// Brings the views up to date with what was appended and commits them, so that the
    /// next query answers at once. The events are stored whatever happens here: a failure
    /// is a warning, and the next query or append catches the views up.
    private func updateViews() async {
        do {
            let start = MonotonicTime.now
            let source = try await data.openSource()
            let progress = ProgressLine(enabled: !json && isatty(2) != 0)
            let (applied, reset) = try RecordsViewAccess.update(root: data.viewsDirectory, source: source) { done, total in
                progress.update("views: \(done) of \(total) events")
            }
            progress.finish()
            if let reset { printError("note: the records view was rebuilt from the log (\(reset))") }
            if !json {
                printError("views: applied \(applied) events in \(String(format: "%.3f", MonotonicTime.now.seconds(since: start))) s")
            }
        } catch {
            printError("warning: views not brought up to date: \(error) (the events are stored; the next query catches up)")
        }
    }

    private func humanReport(_ report: IngestReport, seconds: Double, durability: String, sequences: Bool) -> String {
        let verb = dryRun ? "validated" : (report.applied || report.rejected == 0 ? "appended" : "appended nothing of")
        var lines = ["\(verb) \(dryRun ? report.lines - report.rejected : report.appended) events, \(report.duplicates) duplicates, \(report.rejected) rejected, of \(report.lines) lines in \(String(format: "%.3f", seconds)) s (\(Int(Double(report.lines) / max(seconds, 1e-9))) lines/s)"]
        if report.applied { lines.append("durability: \(durability)") }
        for (partition, range) in report.ranges.sorted(by: { $0.key < $1.key }) {
            // On JetStream an offset is the stream sequence − 1; people see sequences.
            lines.append(sequences ? "  partition \(partition): stream sequences \(range.lowerBound + 1)…\(range.upperBound + 1) (not contiguous: partitions share the stream)"
                                   : "  partition \(partition): offsets \(range.lowerBound)…\(range.upperBound)")
        }
        if !report.assignedIDs.isEmpty {
            lines.append("assigned ids to \(report.assignedIDs.count) lines without one" + (report.assignedIDs.count <= 10 ? ": " + report.assignedIDs.map { "line \($0.line) → \($0.id)" }.joined(separator: ", ") : " (see --json)"))
        }
        if skipInvalid && report.rejected > 0 {
            // Lines over the length limit are read past, not kept: say what the file holds.
            let kept = report.rejectedLinesKept, unkept = report.rejected - kept
            let tooLong = unkept > 0 ? "\(unkept) too long to keep (see the errors)" : ""
            lines.append(kept == 0 ? "no rejected line written to \(rejected): \(tooLong)"
                         : "\(kept) rejected lines written to \(rejected)" + (unkept > 0 ? "; \(tooLong)" : ""))
        }
        return lines.joined(separator: "\n")
    }

    private func jsonReport(_ report: IngestReport, seconds: Double, durability: String) -> String {
        let ranges = report.ranges.sorted(by: { $0.key < $1.key }).map { "{\"partition\":\($0.key),\"first\":\($0.value.lowerBound),\"last\":\($0.value.upperBound)}" }
        let errors = report.errors.map { "{\"line\":\($0.line),\"field\":\(jsonString($0.field)),\"message\":\(jsonString($0.message))}" }
        let assigned = report.assignedIDs.map { "{\"line\":\($0.line),\"id\":\"\($0.id)\"}" }
        return "{\"lines\":\(report.lines),\"appended\":\(report.appended),\"duplicates\":\(report.duplicates),\"rejected\":\(report.rejected),\"applied\":\(report.applied),\"dryRun\":\(dryRun),\"seconds\":\(seconds),\"durability\":\"\(durability)\",\"positions\":[\(ranges.joined(separator: ","))],\"assignedIds\":[\(assigned.joined(separator: ","))],\"errors\":[\(errors.joined(separator: ","))]}"
    }
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var out: [UInt8] = []
    JSONText.appendString(text, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// A one-line progress display on a terminal's standard error, at most 5 updates a second.
final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private var last = MonotonicTime.now
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ text: String) {
        guard enabled, MonotonicTime.now.seconds(since: last) > 0.2 else { return }
        last = MonotonicTime.now
        shown = true
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
