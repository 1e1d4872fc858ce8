import Foundation
import ArgumentParser
import EventLog

@main
struct Backorder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backorder",
        abstract: "An event-sourced store for customer out-of-stock requests.",
        subcommands: [AppendCommand.self, QueryCommand.self, SnapshotCommand.self, ReplayCommand.self, GenerateCommand.self, LogCommand.self, InspectCommand.self, AuditCommand.self])
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
