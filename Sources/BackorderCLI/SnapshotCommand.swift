import ArgumentParser
import EventStore
import Foundation
import OutOfStock
import Projections

/// `backorder snapshot`: bring the views up to date and save a snapshot now.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Catch the views up with the log and write a snapshot.")
    @OptionGroup var data: DataOptions

    func run() async throws {
        try await runQuery {
            let start = MonotonicTime.now
            let reader = try await data.openSource()
            let files = RecordsViewFiles(data: data.viewsDirectory)
            let (view, report) = try files.catchUp(reader: reader, policy: SnapshotPolicy(), force: true)
            for skipped in report.load.skipped { printError("note: \(skipped)") }
            guard let path = report.written else {
                printError("error: no snapshot written: \(report.writeFailure ?? "the log holds no events")")
                throw ExitCode(1)
            }
            print("snapshot of view \(RecordsView.name) at positions \(view.positions) (\(view.eventsApplied) events): \(path), \(snapshotBytes(path)), \(String(format: "%.3f", MonotonicTime.now.seconds(since: start))) s")
        }
    }
}

/// `backorder replay`: rebuild views from the log into a new snapshot, swapped in by rename.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "Rebuild the views from the log (optionally up to a position) and save them.")
    @OptionGroup var data: DataOptions
    @Option(help: "View to rebuild (records).") var view = RecordsView.name
    @Flag(help: "Rebuild every view.") var all = false
    @Option(help: "Rebuild only up to this point and print the view instead of saving it: a time (RFC 3339 or YYYY-MM-DD; events recorded by then) or one offset per partition, comma-separated.") var to: String?

    func run() async throws {
        guard all || view == RecordsView.name else { throw ValidationError("unknown view \(view); views: \(RecordsView.name)") }
        if let to { return try await replayAndPrint(to: to, data: data) }
        try await runQuery {
            let reader = try await data.openSource()
            let total = try reader.endOffsets().reduce(0, +)
            let progress = ProgressLine(enabled: isatty(2) != 0)
            let start = MonotonicTime.now
            let rebuilt = try await Projection.rebuild(RecordsView.self, reader: reader) { applied in
                let seconds = MonotonicTime.now.seconds(since: start)
                let rate = Double(applied) / max(seconds, 1e-6)
                progress.update("replayed \(applied) of \(total) events (\(Int(rate))/s, ETA \(Int(Double(total - applied) / max(rate, 1))) s)")
            }
            progress.finish()
            let seconds = MonotonicTime.now.seconds(since: start)
            let path = try RecordsViewFiles(data: data.viewsDirectory).write(rebuilt, logID: reader.sourceID, replace: true)
            print("rebuilt view \(RecordsView.name) from \(rebuilt.eventsApplied) events in \(String(format: "%.3f", seconds)) s (\(Int(Double(rebuilt.eventsApplied) / max(seconds, 1e-9))) events/s); saved \(path)")
        }
    }
}

/// "N bytes (+ M bytes of query tables)" for a snapshot file.
func snapshotBytes(_ path: String) -> String {
    let fm = FileManager.default
    let size = (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    let tables = String(path.dropLast(".snapshot".count)) + SnapshotDirectory.tablesSuffix
    let tableBytes = ((try? fm.contentsOfDirectory(atPath: tables)) ?? []).reduce(0) {
        $0 + ((try? fm.attributesOfItem(atPath: tables + "/" + $1)[.size] as? Int) ?? 0)
    }
    return "\(size) bytes (+ \(tableBytes) bytes of query tables)"
}
