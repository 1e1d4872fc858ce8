import ArgumentParser
import EventStore
import Foundation
import KVStore
import OutOfStock
import Projections
import RecordsView

/// `backorder snapshot`: bring the views up to date with the log and commit them now.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Bring the views up to date with the log and save them (costs what changed since they were last saved).")
    @OptionGroup var data: DataOptions

    func run() async throws {
        try await runQuery {
            let start = MonotonicTime.now
            let source = try await data.openSource()
            let progress = ProgressLine(enabled: isatty(2) != 0)
            let (applied, reset) = try RecordsViewAccess.update(root: data.viewsDirectory, source: source) { done, total in
                progress.update("applied \(done) of \(total) events")
            }
            progress.finish()
            if let reset { printError("note: the view was rebuilt from the log (\(reset))") }
            let access = try RecordsViewAccess.open(root: data.viewsDirectory, source: source, freshness: .staleOK)
            defer { try? access.close() }
            let view = access.view
            print("view \(RecordsProjector.name) (\(view.generation)) at positions \(view.checkpoint.positions) (\(view.checkpoint.eventsApplied) events): "
                + "applied \(applied) new events in \(String(format: "%.3f", MonotonicTime.now.seconds(since: start))) s; "
                + "\(view.store.diskBytes) bytes in \(view.store.shape.files.reduce(0, +)) files")
        }
    }
}

/// `backorder replay`: rebuild views from the log into a new generation, swapped in when done.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "Rebuild the views from the log (optionally up to a position) and save them.")
    @OptionGroup var data: DataOptions
    @Option(help: "View to rebuild (records).") var view = RecordsProjector.name
    @Flag(help: "Rebuild every view.") var all = false
    @Option(help: "Rebuild only up to this point and print the view instead of saving it: a time (RFC 3339 or YYYY-MM-DD; events recorded by then) or one offset per partition, comma-separated.") var to: String?

    func run() async throws {
        guard all || view == RecordsProjector.name else { throw ValidationError("unknown view \(view); views: \(RecordsProjector.name)") }
        if let to { return try await replayAndPrint(to: to, data: data) }
        try await runQuery {
            let source = try await data.openSource()
            let progress = ProgressLine(enabled: isatty(2) != 0)
            let start = MonotonicTime.now
            let report = try MaintainedView<RecordsProjector>.rebuild(root: data.viewsDirectory, source: source, options: RecordsViewAccess.options()) { applied, total in
                let seconds = MonotonicTime.now.seconds(since: start)
                let rate = Double(applied) / max(seconds, 1e-6)
                progress.update("replayed \(applied) of \(total) events (\(Int(rate))/s, ETA \(Int(Double(total - applied) / max(rate, 1))) s); queries still read the old view")
            }
            progress.finish()
            let seconds = MonotonicTime.now.seconds(since: start)
            print("rebuilt view \(RecordsProjector.name) from \(report.events) events in \(String(format: "%.3f", seconds)) s "
                + "(\(Int(Double(report.events) / max(seconds, 1e-9))) events/s; \(report.caughtUp) appended meanwhile); "
                + "\(report.bytes) bytes; now current: \(report.generation)")
        }
    }
}
