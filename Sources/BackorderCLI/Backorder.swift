import CMallocTuning
import Foundation
import ArgumentParser
import EventLog
import EventStore
import JetStreamStore

@main
struct Backorder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backorder",
        abstract: "An event-sourced store for customer out-of-stock requests.",
        subcommands: [AppendCommand.self, ReadCommand.self, ConsumeCommand.self, GroupsCommand.self, QueryCommand.self, ServeCommand.self, TokenCommand.self, SnapshotCommand.self, ReplayCommand.self, GenerateCommand.self, LogCommand.self, InspectCommand.self, AuditCommand.self])

    static func main() async {
        limitMallocArenas()
        await main(nil)
    }

    /// glibc gives each thread that meets a busy heap an arena of its own (up to 8 per
    /// core) and keeps freed memory in each: an append's parse, index, log and view threads
    /// left ~55 MB of 408 MB peak RSS on 1,000,000 events as free space scattered in arenas
    /// (bench/RESULTS.md). Two arenas keep that memory reusable across threads for 3–5 %
    /// more CPU. Set before the work starts its threads, unless the operator
    /// chose a number (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).
    private static func limitMallocArenas() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["MALLOC_ARENA_MAX"] == nil, environment["GLIBC_TUNABLES"]?.contains("arena_max") != true else { return }
        _ = backorder_limit_malloc_arenas(2)
    }
}

/// Options every command that touches the data directory shares.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (default: $BACKORDER_DATA or ./backorder-data).")
    var data: String?

    var directory: String {
        if let data { return data }
        if let env = getenv("BACKORDER_DATA") { return String(cString: env) }
        return "backorder-data"
    }

    var logPath: String { directory + "/log" }

    @Option(name: .long, help: "NATS JetStream servers, comma-separated (nats://127.0.0.1:4222,…): use the cluster store instead of the embedded log (default: $BACKORDER_CLUSTER). --data then holds only the views.")
    var cluster: String?
    @Option(name: .long, help: "Cluster tenant group: JetStream stream BO_<group>.")
    var clusterGroup = "0"
    @Option(name: .long, help: "Replicas of a new cluster stream.")
    var replicas = 3
    @Option(name: .long, help: ArgumentHelp("Seconds a call to the cluster is retried (no stream leader, a timeout, a reconnect) before it fails. A publish that fails stops appends until the cluster answers again (a server then goes on by itself).", valueName: "seconds"))
    var clusterRetry = 30.0

    func validate() throws {
        // The store checks it too; here the message names the option.
        guard clusterRetry > 0 && clusterRetry <= ClusterOptions.maxRetrySeconds else {
            throw ValidationError("--cluster-retry must be more than 0 and at most \(Int(ClusterOptions.maxRetrySeconds)) seconds, not \(clusterRetry)")
        }
    }

    /// The cluster URLs, if the cluster store is selected.
    var clusterURLs: String? {
        if let cluster { return cluster }
        if let env = getenv("BACKORDER_CLUSTER"), env.pointee != 0 { return String(cString: env) }
        return nil
    }

    /// Where the views (snapshots, query tables) are kept: beside the log, or for a
    /// cluster store in a directory of their own per JetStream stream.
    var viewsDirectory: String {
        clusterURLs == nil ? directory : directory + "/jetstream-BO_" + clusterGroup
    }

    /// Options for the cluster store.
    func clusterOptions(partitions: Int = 8) -> ClusterOptions? {
        guard let urls = clusterURLs else { return nil }
        var options = ClusterOptions(urls: urls)
        options.group = clusterGroup
        options.replicas = replicas
        options.partitionCount = partitions
        options.cacheDirectory = viewsDirectory
        options.retrySeconds = clusterRetry
        return options
    }

    /// The events, from the cluster or the embedded log, read-only. `inRecordedOrder`: for
    /// reading the partitions merged by recorded time beside a writer in another process
    /// (`EventReader.openInRecordedOrder`); queries read to the acknowledged ends.
    func openSource(inRecordedOrder: Bool = false) async throws -> any EventSource {
        if let options = clusterOptions() { return try await JetStreamStore.open(options, readOnly: true).source }
        return inRecordedOrder ? try await EventReader.openInRecordedOrder(at: directory) : try await EventReader.open(at: directory)
    }

    /// Refuses commands that only the embedded log supports when a cluster is selected.
    func requireEmbedded(_ command: String) throws {
        guard clusterURLs == nil else {
            printError("error: `backorder \(command)` reads the embedded log's files and is not available on a JetStream store (unset --cluster / BACKORDER_CLUSTER)")
            throw ExitCode(1)
        }
    }
}

/// Exits with a clear message and status 1 for log errors, instead of a stack trace.
func runReportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as LogError {
        printError("error: \(error.description)")
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}
