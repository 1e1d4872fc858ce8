import ArgumentParser
import EventStore
import Foundation
import OutOfStock
import Projections
import RecordsView

/// `backorder replay --to POSITION|TIME`: rebuilds the records view from the log up to a
/// point, in memory, and prints it (one dashboard per tenant, as JSON lines); nothing is saved.
func replayAndPrint(to point: String, data: DataOptions) async throws {
    try await runQuery {
        let reader = try await data.openSource()
        let ends = try reader.endOffsets()
        let positions: [Int64]
        var now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        if let time = try? parseTime(point, "--to") {
            positions = try positionsRecorded(by: time, reader)
            now = time
        } else {
            let offsets = point.split(separator: ",").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
            guard offsets.count == reader.partitionCount, offsets.allSatisfy({ $0 != nil }) else {
                throw QueryError(description: "--to \(point): give a time, or \(reader.partitionCount) offsets (one per partition; a JetStream store has one: its sequence) separated by commas")
            }
            positions = offsets.map { $0 ?? 0 }
            for (partition, offset) in positions.enumerated() where offset < 0 || offset > ends[partition] {
                throw QueryError(description: "--to: offset \(offset) is outside partition \(partition), which holds offsets 0..<\(ends[partition])")
            }
        }
        let start = MonotonicTime.now
        let view = try scratchView(data, reader, upTo: positions)
        defer { try? view.discardScratch() }
        printError("replayed view \(RecordsProjector.name) up to positions \(positions): \(view.checkpoint.eventsApplied) events in \(String(format: "%.3f", MonotonicTime.now.seconds(since: start))) s (not saved)")
        let snapshot = view.snapshot()
        for tenant in try RecordsQueries.tenants(in: snapshot) {
            let dashboard = try RecordsQueries(snapshot: snapshot, tenant: tenant).dashboard(range: TimeRange(), now: now)
            print("{\"tenant\":\(jsonString(tenant)),\"dashboard\":" + String(decoding: try encodedJSON(dashboard), as: UTF8.self) + "}")
        }
    }
}

private func encodedJSON<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try encoder.encode(value)
}
