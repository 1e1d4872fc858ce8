import Foundation
import ArgumentParser
import DataGenerator
import EventLog
import JetStreamStore

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Work with the write-ahead log directly.",
        subcommands: [AppendSample.self, Stats.self, Verify.self, CrashWriter.self])
}

extension LogCommand {
    struct AppendSample: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "append-sample",
            abstract: "Append generated out-of-stock events (about 200 bytes each).")

        @OptionGroup var data: DataOptions
        @Option(help: "Events to append.") var events = 100_000
        @Option(help: "Events per batch.") var batchSize = 1_000
        @Option(help: "fsync, interval[:MS] or none.") var durability = "fsync"
        @Option(help: "Codec of a new log: lz4, zstd or none.") var codec = "lz4"
        @Option(help: "Partitions of a new log.") var partitions = 8
        @Option(help: "Seed of the generator.") var seed: UInt64 = 1

        func run() async throws {
            guard let durability = Durability(parsing: durability) else { throw ValidationError("unknown durability \"\(self.durability)\"") }
            guard let codec = Codec(name: codec) else { throw ValidationError("unknown codec \"\(self.codec)\"") }
            guard batchSize > 0 && batchSize <= Limits.maxRecordsPerBatch else { throw ValidationError("--batch-size must be 1...\(Limits.maxRecordsPerBatch)") }
            try data.requireEmbedded("log append-sample")
            // Raw sample records are not events: never mix them into an event store's log.
            guard !FileManager.default.fileExists(atPath: data.directory + "/index") else {
                throw ValidationError("\(data.directory) holds an event store; append-sample writes raw log records and would corrupt it — use another --data directory")
            }
            try await runReportingErrors {
                var options = LogOptions()
                options.durability = durability
                options.codec = codec
                options.partitionCount = partitions
                let log = try await WriteAheadLog.open(at: data.logPath, options: options)
                for event in log.recoveryEvents { printError("recovered: \(event)") }
                var generator = SampleEvents(seed: seed)
                let start = MonotonicTime.now
                var appended = 0
                // Group events by partition, then append each group as one batch.
                while appended < events {
                    let count = min(batchSize * log.partitionCount, events - appended)
                    var batches = [RecordBatchBuilder](repeating: RecordBatchBuilder(), count: log.partitionCount)
                    for _ in 0..<count {
                        let event = generator.next()
                        try batches[log.partition(forKey: event.key)].append(key: event.key, value: event.value, timestamp: event.timestamp)
                    }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (partition, batch) in batches.enumerated() where batch.count > 0 {
                            group.addTask { _ = try await log.append(batch, partition: partition) }
                        }
                        try await group.waitForAll()
                    }
                    appended += count
                }
                let seconds = MonotonicTime.now.seconds(since: start)
                try await log.close()
                print("appended \(appended) events in \(String(format: "%.3f", seconds)) s (\(Int(Double(appended) / max(seconds, 1e-9))) events/s), durability \(durability)")
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print per-partition offsets, segments and sizes.")
        @OptionGroup var data: DataOptions

        func run() async throws {
            if let cluster = data.clusterOptions() { return try await clusterStats(cluster) }
            try await runReportingErrors {
                let log = try await openReadOnly(data)
                let stats = log.statistics()
                print("log \(data.logPath): \(log.partitionCount) partitions, codec \(log.manifest.codec), segments of \(log.manifest.segmentBytes) bytes")
                print(pad("partition", 10) + pad("start", 14) + pad("end", 14) + pad("segments", 10) + pad("bytes", 16))
                for s in stats {
                    print(pad(String(s.partition), 10) + pad(String(s.startOffset), 14) + pad(String(s.endOffset), 14) + pad(String(s.segmentCount), 10) + pad(String(s.bytes), 16))
                }
                let records = stats.reduce(Int64(0)) { $0 + $1.endOffset - $1.startOffset }
                let bytes = stats.reduce(Int64(0)) { $0 + $1.bytes }
                print(pad("total", 10) + pad("", 14) + pad(String(records), 14) + pad(String(stats.reduce(0) { $0 + $1.segmentCount }), 10) + pad(String(bytes), 16))
                if records > 0 { print(String(format: "%.1f bytes on disk per record", Double(bytes) / Double(records))) }
            }
        }

        /// The JetStream stream's state, its replicas' and what an append survives.
        private func clusterStats(_ options: ClusterOptions) async throws {
            try await runQuery {
                let store = try await JetStreamStore.open(options, readOnly: true)
                let status = try await store.status()
                print("JetStream stream \(store.streamName) on \(options.urls): R\(status.replicas), \(store.partitionCount) partitions, "
                    + "\(status.messages) events, last sequence \(status.lastSequence), \(status.bytes) bytes")
                if status.messages > 0 { print(String(format: "%.1f bytes stored per event (per replica)", Double(status.bytes) / Double(status.messages))) }
                print("leader: \(status.leader ?? "none")")
                for peer in status.peers {
                    print("replica \(peer.name): \(peer.offline ? "offline" : peer.current ? "current" : "catching up"), \(peer.lag) operations behind")
                }
                print("durability: \(store.durabilityStatement)")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read every batch, checking CRC32C, framing and offset density.")
        @OptionGroup var data: DataOptions

        func run() async throws {
            try await runReportingErrors {
                let log = try await openReadOnly(data)
                var records = 0, batches = 0, bytes = 0
                let start = MonotonicTime.now
                for partition in 0..<log.partitionCount {
                    var cursor = try log.cursor(partition: partition, from: 0)
                    while let batch = try cursor.next() {
                        batches += 1
                        records += batch.header.recordCount
                        bytes += batch.header.batchLength
                    }
                }
                let seconds = MonotonicTime.now.seconds(since: start)
                print("intact: \(records) records in \(batches) batches, \(bytes) bytes, in \(String(format: "%.3f", seconds)) s")
            }
        }
    }

    /// Used by the crash tests: appends forever (or `--events`) and prints one line per
    /// acknowledged batch, flushed, so that the parent knows what was promised.
    struct CrashWriter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "crash-writer", abstract: "Append and report acknowledgements (for tests).", shouldDisplay: false)
        @OptionGroup var data: DataOptions
        @Option var events = Int.max
        @Option var partitions = 2
        @Option var segmentBytes = 1 << 20
        @Option var seed: UInt64 = 1
        @Option var writer = 0
        @Option var concurrency = 4
        @Option var reopenEvery = 0

        func run() async throws {
            try await runReportingErrors {
                var options = LogOptions()
                options.partitionCount = partitions
                options.segmentBytes = segmentBytes
                options.recoveryCheckpointBytes = 64 << 10
                options.lockTimeoutMilliseconds = 60_000
                var log = try await WriteAheadLog.open(at: data.logPath, options: options)
                var random = SplitMix64(seed: seed)
                var sent = 0, rounds = 0
                while sent < events {
                    let current = log
                    let acks = try await withThrowingTaskGroup(of: String.self) { group in
                        for task in 0..<concurrency {
                            let size = Int(random.next() % 20) + 1
                            let partition = Int(random.next() % UInt64(current.partitionCount))
                            let first = sent + task * 100
                            group.addTask {
                                var batch = RecordBatchBuilder()
                                for i in 0..<size {
                                    let value = CrashRecord.value(writer: writer, sequence: first + i)
                                    try batch.append(key: Array("w\(writer)".utf8), value: value, timestamp: Int64(first + i))
                                }
                                let ack = try await current.append(batch, partition: partition)
                                return "ack \(ack.partition) \(ack.baseOffset) \(ack.recordCount) \(writer) \(first)"
                            }
                        }
                        var lines: [String] = []
                        for try await line in group { lines.append(line) }
                        return lines
                    }
                    // write(2) directly: the line must leave the process before the next append.
                    let text = acks.map { $0 + "\n" }.joined()
                    _ = text.withCString { write(1, $0, strlen($0)) }
                    sent += concurrency * 100
                    rounds += 1
                    if reopenEvery > 0 && rounds % reopenEvery == 0 {
                        try await log.close()
                        log = try await WriteAheadLog.open(at: data.logPath, options: options)
                    }
                }
                try await log.close()
            }
        }
    }
}

/// The value of record `sequence` of `writer` in crash tests: self-describing so that a
/// checker can tell exactly which bytes a record must have.
public enum CrashRecord {
    /// The bytes of record `sequence` written by `writer`.
    public static func value(writer: Int, sequence: Int) -> [UInt8] {
        var value = Array("writer=\(writer) seq=\(sequence) ".utf8)
        var x = UInt64(sequence) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(writer)
        for _ in 0..<(40 + sequence % 150) {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            value.append(UInt8(97 + (x >> 59)))
        }
        return value
    }
}

/// Opens the log read-only, printing what the open noticed (an unverified tail, …).
func openReadOnly(_ data: DataOptions) async throws -> WriteAheadLog {
    try data.requireEmbedded("log")
    var options = LogOptions()
    options.writable = false
    let log = try await WriteAheadLog.open(at: data.logPath, options: options)
    for event in log.recoveryEvents { printError("note: \(event)") }
    return log
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
