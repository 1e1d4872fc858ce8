import Foundation
import ArgumentParser
import EventLog

/// Dumps a segment file's batches, even when the rest of the log directory is damaged.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Dump the batches of a segment file: offsets, times, codec, sizes, CRC status, chain hash and link.")

    @Argument(help: "Path of a .log segment file.") var segment: String
    @Flag(help: "Print every record's key and value too.") var records = false

    func run() async throws {
        try await runReportingErrors {
            var damaged = 0
            let previous = SegmentInspector.previousChain(forSegment: segment)
            let report = try SegmentInspector.inspect(path: segment, previousChain: previous) { entry in
                switch entry {
                case let .batch(header, position, status, link, batch):
                    print("@\(position) offsets \(header.baseOffset)..<\(header.nextOffset) records \(header.recordCount) codec \(header.codec) bytes \(header.batchLength) (raw \(header.uncompressedLength)) time \(header.firstTimestamp)...\(header.maxTimestamp) crc 0x\(String(header.crc, radix: 16)) \(status)")
                    print("  chain \(header.chain) \(link)")
                    if status != "ok" || link == "LINK BROKEN" { damaged += 1 }
                    if records, let batch {
                        batch.forEach { record in
                            print("  \(record.offset) t=\(record.timestamp) key=\(String(decoding: record.key, as: UTF8.self)) value=\(String(decoding: record.value, as: UTF8.self))")
                        }
                    }
                case let .damaged(position, reason):
                    damaged += 1
                    print("@\(position) DAMAGED: \(reason)")
                }
            }
            print("\(report.batches) batches, \(report.records) records, \(report.dataBytes) bytes of data, \(report.fileBytes - report.dataBytes) bytes after the data")
            if damaged > 0 {
                printError("error: \(segment): \(damaged) damaged batch(es)")
                throw ExitCode(1)
            }
        }
    }
}
