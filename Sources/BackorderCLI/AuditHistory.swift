import ArgumentParser
import EventStore
import JetStreamStore
import Foundation
import OutOfStock
import RecordsView

/// `backorder audit history RECORD_ID`: every event of one record, from the log.
struct AuditHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every event of a record, read from the log: who, when, what, and each field before → after.")
    @Argument(help: "The record id (e.g. R-000123).") var recordID: String
    @OptionGroup var data: DataOptions
    @OptionGroup var tenant: TenantOptions

    func run() async throws {
        try await runQuery {
            let start = MonotonicTime.now
            let stream = StreamName.record(recordID)
            let events: [StoredEvent], howFound: String
            if let cluster = data.clusterOptions() {
                events = try await JetStreamStore.open(cluster, readOnly: true).readStream(tenant: tenant.tenant, stream: stream)
                howFound = "read from its JetStream subject"
            } else {
                let history = try await EventReader.open(at: data.directory).readStream(tenant: tenant.tenant, stream: stream)
                events = history.events
                howFound = history.usedIndex ? "stream index, \(history.scannedEvents) newer events scanned" : "partition scanned: \(history.scannedEvents) events"
            }
            guard !events.isEmpty else {
                throw QueryError(description: "no record \(recordID) in tenant \(tenant.tenant): the log holds no event of stream \(stream)")
            }
            let entries = try AuditEntry.history(of: events, stream: stream)
            let seconds = MonotonicTime.now.seconds(since: start)
            if tenant.json { return try printJSON(entries) }
            print("Record \(recordID), tenant \(tenant.tenant): \(entries.count) events (\(howFound); \(String(format: "%.1f", seconds * 1000)) ms)")
            for entry in entries {
                print("\nv\(entry.version)  \(entry.at)  \(entry.type)  by \(entry.actor)")
                print("    recorded \(entry.recordedAt), position \(entry.position), event \(entry.eventId)" + (entry.correlationId.map { ", correlation \($0)" } ?? ""))
                for change in entry.changes {
                    print("    \(change.field): \(change.before.map(quoted) ?? "(none)") → \(change.after.map(quoted) ?? "(none)")")
                }
            }
        }
    }

    private func quoted(_ text: String) -> String {
        text.isEmpty || text.contains(" ") || text.contains("\n") ? jsonString(text) : text
    }
}
