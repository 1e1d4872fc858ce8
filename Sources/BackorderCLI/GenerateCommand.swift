import ArgumentParser
import DataGenerator
import Foundation

/// `backorder generate`: deterministic out-of-stock events as NDJSON on standard output.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a deterministic, realistic data set of out-of-stock events as NDJSON to standard output.")

    @Option(help: "Events to write.") var events = 100_000
    @Option(help: "Seed: the same seed and --end give the same bytes.") var seed: UInt64 = 1
    @Option(help: "Tenants.") var tenants = 1
    @Option(help: "Customers per tenant.") var customers = 2_000
    @Option(help: "Products per tenant.") var products = 1_000
    @Option(help: "Days the requests span.") var days = 365
    @Option(help: ArgumentHelp("The latest business time of any event (RFC 3339 or YYYY-MM-DD, UTC; default: today, 00:00 UTC).",
                               discussion: "Requests span the --days days that end \(GenerateCommand.followUpDays) days before it, so that their follow-ups fit; a follow-up that would come later is dated --end."))
    var end: String?

    /// Days between the last request and --end, for deliveries, closes and refunds.
    static let followUpDays = 30

    func run() async throws {
        guard events >= 0, tenants >= 1, customers >= 1, products >= 1, days >= 1 else {
            throw ValidationError("--events must be ≥ 0 and --tenants, --customers, --products, --days ≥ 1")
        }
        let endTime = try end.map { try parseTime($0, "--end") } ?? Self.startOfToday()
        var options = GeneratorOptions()
        options.end = endTime
        options.start = endTime - Int64(days + Self.followUpDays) * 86_400_000_000
        guard options.start >= 0 else { throw ValidationError("--end \(end ?? "") is earlier than --days \(days) plus \(Self.followUpDays) days after 1970-01-01") }
        options.seed = seed
        options.events = events
        options.tenants = tenants
        options.customersPerTenant = customers
        options.productsPerTenant = products
        options.days = days
        var generator = EventGenerator(options: options)
        var output = StandardOutput()
        while let line = generator.next() {
            try output.appendLine { $0.append(contentsOf: line) }
        }
        try output.flush()
    }

    /// Today at 00:00 UTC, in µs since the epoch: the same all day, so that the same
    /// seed gives the same bytes.
    static func startOfToday() -> Int64 {
        let seconds = Int64(Date().timeIntervalSince1970)
        return (seconds - seconds % 86_400) * 1_000_000
    }
}
