import Foundation
import Testing
import OutOfStock
import Projections

/// Runs the built `backorder` executable and returns (status, stdout, stderr).
func runBackorder(_ arguments: [String], stdin: String? = nil) throws -> (Int32, String, String) {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = bundle.deletingLastPathComponent()
    var executable: String?
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("backorder").path
        if FileManager.default.isExecutableFile(atPath: candidate) { executable = candidate; break }
        directory = directory.deletingLastPathComponent()
    }
    guard let executable else { throw CLIError(message: "backorder executable not found near \(bundle.path); run swift build first") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

struct CLIError: Error { let message: String }

@Suite(.serialized) struct AppendCommandTests {
    @Test func generateAppendAppendAgainAndConflict() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let input = dir + "/events.ndjson"
        let (genStatus, generated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "5", "--customers", "50", "--products", "20"])
        #expect(genStatus == 0)
        try generated.write(toFile: input, atomically: true, encoding: .utf8)
        #expect(generated.split(separator: "\n").count == 3_000)
        let (again, regenerated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "5", "--customers", "50", "--products", "20"])
        #expect(again == 0 && regenerated == generated, "the generator is deterministic")

        let data = dir + "/store"
        let (status, out, err) = try runBackorder(["append", input, "--data", data, "--json"])
        #expect(status == 0, "\(err)")
        #expect(out.contains("\"appended\":3000"))
        #expect(out.contains("\"duplicates\":0"))

        let (status2, out2, _) = try runBackorder(["append", input, "--data", data, "--json"])
        #expect(status2 == 0)
        #expect(out2.contains("\"appended\":0"))
        #expect(out2.contains("\"duplicates\":3000"))

        // A conflicting expected version: a clear error, exit 1, nothing written.
        let conflict = line("OutOfStockAmended", #""recordId":"R-000001","notes":"late""#, extra: #","expectedVersion":99"#)
            .replacingOccurrences(of: "\"acme\"", with: "\"default\"")
        let (status3, _, err3) = try runBackorder(["append", "-", "--data", data], stdin: conflict + "\n")
        #expect(status3 == 1)
        #expect(err3.contains("line 1: field expectedVersion"), "\(err3)")
        #expect(err3.contains("not 99"))
        #expect(err3.contains("nothing was appended"))

        // --expect-version for a single-stream input.
        let (status4, _, err4) = try runBackorder(["append", "-", "--data", data, "--expect-version", "0"],
                                                 stdin: line("OutOfStockAmended", #""recordId":"R-000001","notes":"late""#)
                                                    .replacingOccurrences(of: "\"acme\"", with: "\"default\"") + "\n")
        #expect(status4 == 1, "R-000001 exists, so version 0 is wrong")
        #expect(err4.contains("field expectedVersion"), "\(err4)")
    }

    @Test func oneBadLineRejectsTheWholeInput() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = setupLines + [line("DeliveryRecorded", #""recordId":"R-1","quantity":"ten""#), line("DeliveryRecorded", #""recordId":"R-1","quantity":10"#)]
        let (status, out, err) = try runBackorder(["append", "-", "--data", dir, "--json"], stdin: lines.joined(separator: "\n"))
        #expect(status == 1)
        #expect(out.contains("\"appended\":0"))
        #expect(out.contains("\"applied\":false"))
        #expect(out.contains("{\"line\":6,\"field\":\"data.quantity\""), "\(out) \(err)")
        // Then with --skip-invalid the valid lines go in and the bad one is written out.
        let rejectedPath = dir + "-rejected.ndjson"
        defer { try? FileManager.default.removeItem(atPath: rejectedPath) }
        let (status2, out2, _) = try runBackorder(["append", "-", "--data", dir, "--json", "--skip-invalid", "--rejected", rejectedPath], stdin: lines.joined(separator: "\n"))
        #expect(status2 == 3)
        #expect(out2.contains("\"appended\":6"))
        let rejected = (try? String(contentsOfFile: rejectedPath, encoding: .utf8)) ?? ""
        #expect(rejected.contains("\"line\":6"))
        #expect(rejected.contains("\\\"ten\\\""))
    }

    @Test func unreadableInputAndBadOptionsFailClearly() throws {
        let (status, _, err) = try runBackorder(["append", "/nonexistent/events.ndjson", "--data", freshDirectory()])
        #expect(status == 1)
        #expect(err.contains("cannot read /nonexistent/events.ndjson"))
        let (status2, _, err2) = try runBackorder(["append", "-", "--durability", "sometimes"])
        #expect(status2 != 0)
        #expect(err2.contains("unknown durability"))
    }
}

@Suite(.serialized) struct QueryCommandTests {
    @Test func queriesSnapshotsAndReplayFromTheCommandLine() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, generated, _) = try runBackorder(["generate", "--events", "2000", "--seed", "9", "--customers", "30", "--products", "10"])
        let (appendStatus, _, appendErr) = try runBackorder(["append", "-", "--data", dir], stdin: generated)
        #expect(appendStatus == 0, "\(appendErr)")

        let (status, out, _) = try runBackorder(["query", "dashboard", "--data", dir, "--json", "--now", "2026-12-31T00:00:00Z"])
        #expect(status == 0)
        #expect(out.contains("\"byStatus\""))
        #expect(out.contains("\"oldestPending\""))
        let (status2, human, _) = try runBackorder(["query", "dashboard", "--data", dir])
        #expect(status2 == 0 && human.contains("Top customers by outstanding quantity"))

        let (status3, record, _) = try runBackorder(["query", "record", "R-000001", "--data", dir])
        #expect(status3 == 0 && record.contains("History") && record.contains("OutOfStockReported"))

        let (status4, _, err4) = try runBackorder(["query", "customer", "C-404", "--data", dir])
        #expect(status4 == 1 && err4.contains("unknown customer C-404"))
        let (status5, _, err5) = try runBackorder(["query", "records", "--data", dir, "--from", "last tuesday"])
        #expect(status5 != 0 && err5.contains("is not a time"))
        let (status6, _, err6) = try runBackorder(["query", "records", "--data", dir, "--cursor", "nope"])
        #expect(status6 == 1 && err6.contains("bad cursor"))
        let (status7, _, err7) = try runBackorder(["query", "dashboard", "--data", dir, "--tenant", "nobody"])
        #expect(status7 == 1 && err7.contains("tenant nobody has no data"))

        let (status8, snap, _) = try runBackorder(["snapshot", "--data", dir])
        #expect(status8 == 0 && snap.contains("snapshot of view records"))
        let (status9, replay, _) = try runBackorder(["replay", "--all", "--data", dir])
        #expect(status9 == 0 && replay.contains("rebuilt view records from 2000 events"))
        // The answer is the same from the snapshot as from the rebuild.
        let (_, again, _) = try runBackorder(["query", "dashboard", "--data", dir, "--json", "--now", "2026-12-31T00:00:00Z"])
        #expect(again == out, "the dashboard from the rebuilt view differs from the incremental one")
        let (status10, _, err10) = try runBackorder(["query", "dashboard", "--data", dir + "-missing"])
        #expect(status10 == 1 && err10.contains("not a Backorder log"))
    }

    /// Queries give the same answers from a current query table, from a view caught up in
    /// memory, and after the table was damaged (reported, then rewritten).
    @Test func tablesAndCatchUpGiveTheSameAnswers() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, generated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "4", "--customers", "25", "--products", "12"])
        let lines = generated.split(separator: "\n", omittingEmptySubsequences: true)
        let first = lines.prefix(2_000).joined(separator: "\n") + "\n", rest = lines.dropFirst(2_000).joined(separator: "\n") + "\n"
        #expect(try runBackorder(["append", "-", "--data", dir], stdin: first).0 == 0)
        let queries: [[String]] = [
            ["dashboard", "--json", "--now", "2026-12-31T00:00:00Z"],
            ["dashboard", "--json", "--now", "2026-12-31T00:00:00Z", "--from", "2026-03-01", "--to", "2026-09-01"],
            ["records", "--json", "--search", "co", "--limit", "7"], ["records", "--json", "--status", "pending", "--sort", "oldest"],
            ["customer", "C-000003", "--json"], ["product", "P-000002", "--json"], ["record", "R-000010", "--json"],
            ["insights", "--by", "region", "--json"],
        ]
        func answers() throws -> (out: [String], err: String) {
            var out: [String] = [], err = ""
            for q in queries {
                let (status, o, e) = try runBackorder(["query"] + q + ["--data", dir])
                #expect(status == 0, "\(q): \(e)")
                out.append(o)
                err += e
            }
            return (out, err)
        }
        let tables = dir + "/views/records/" + (SnapshotDirectory(root: dir + "/views", name: RecordsView.name).list().first?.prefix(20) ?? "") + ".tables"
        #expect(FileManager.default.fileExists(atPath: tables), "append wrote a snapshot with query tables")
        let fromTables = try answers()
        #expect(fromTables.err.isEmpty, "answered from current tables: \(fromTables.err)")

        // Behind the log: caught up in memory (below the snapshot policy), and said so.
        #expect(try runBackorder(["append", "-", "--data", dir, "--skip-views"], stdin: rest).0 == 0)
        let (_, _, note) = try runBackorder(["query", "dashboard", "--data", dir])
        #expect(note.contains("note: applied 1000 events newer than the snapshot"), "\(note)")
        let caughtUp = try answers()
        #expect(try runBackorder(["snapshot", "--data", dir]).0 == 0)
        let current = try answers()
        #expect(current.err.isEmpty)
        #expect(current.out == caughtUp.out, "the tables answer as the caught-up view does")
        #expect(current.out != fromTables.out, "the later events changed the answers")

        // A damaged table is reported, not trusted; the answer is the same; it is rewritten.
        let newest = dir + "/views/records/" + (SnapshotDirectory(root: dir + "/views", name: RecordsView.name).list().first?.prefix(20) ?? "") + ".tables"
        let table = newest + "/" + (TenantTable.fileName(tenant: "default") ?? "")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: table)))
        bytes[bytes.count / 2] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: table))
        let damaged = try answers()
        #expect(damaged.err.contains("CRC32C mismatch") || damaged.err.contains("does not decode"), "\(damaged.err)")
        #expect(damaged.out == current.out)
        #expect(try answers().err.isEmpty, "a fresh table was written")
    }

    /// Append snapshots only when the policy says so; a view too large to catch up in
    /// memory answers from its last snapshot and says what it leaves out, unless asked to
    /// be consistent.
    @Test func snapshotPolicyAndLaggingLargeViews() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, generated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "5", "--customers", "20", "--products", "10"])
        let lines = generated.split(separator: "\n", omittingEmptySubsequences: true)
        func part(_ range: Range<Int>) -> String { lines[range].joined(separator: "\n") + "\n" }
        let snapshots = { SnapshotDirectory(root: dir + "/views", name: RecordsView.name).list() }
        #expect(try runBackorder(["append", "-", "--data", dir], stdin: part(0..<2_000)).0 == 0)
        #expect(snapshots().count == 1, "the first append writes the first snapshot")
        #expect(try runBackorder(["append", "-", "--data", dir], stdin: part(2_000..<2_100)).0 == 0)
        #expect(snapshots().count == 1, "100 events: no snapshot due (10,000 by default)")
        let dashboard = ["query", "dashboard", "--json", "--now", "2026-12-31T00:00:00Z", "--data", dir]
        let (_, behindOut, behindErr) = try runBackorder(dashboard + ["--in-memory-catch-up-limit", "10"])
        #expect(behindErr.contains("leaves out the newest 100 events"), "\(behindErr)")
        let (_, consistentOut, consistentErr) = try runBackorder(dashboard + ["--in-memory-catch-up-limit", "10", "--consistent"])
        #expect(!consistentErr.contains("leaves out"))
        let (_, caughtUpOut, _) = try runBackorder(dashboard)
        #expect(consistentOut == caughtUpOut, "consistent = caught up in memory")
        #expect(behindOut != caughtUpOut, "the lagging answer is the snapshot's")
        #expect(try runBackorder(["append", "-", "--data", dir, "--snapshot-events", "500"], stdin: part(2_100..<3_000)).0 == 0)
        #expect(snapshots().count == 2, "1,000 events ≥ 500 and ≥ 10 % of the view: a snapshot")
        let (_, current, currentErr) = try runBackorder(dashboard + ["--in-memory-catch-up-limit", "10"])
        #expect(currentErr.isEmpty && current != caughtUpOut)
        let (nobody, _, nobodyErr) = try runBackorder(dashboard + ["--in-memory-catch-up-limit", "10", "--tenant", "nobody"])
        #expect(nobody == 1 && nobodyErr.contains("tenant nobody has no data in the last snapshot") && nobodyErr.contains("tenants: default"), "\(nobodyErr)")
    }

    @Test func snapshotPolicyDecisions() {
        let policy = SnapshotPolicy(events: 100, seconds: 60, growth: 0.1)
        #expect(policy.isDue(behind: 1, viewEvents: 0, age: nil), "no snapshot yet")
        #expect(!policy.isDue(behind: 0, viewEvents: 10, age: nil))
        #expect(!policy.isDue(behind: 99, viewEvents: 10, age: 1_000), "below the event threshold")
        #expect(policy.isDue(behind: 100, viewEvents: 1_000, age: 1), "10 % growth")
        #expect(!policy.isDue(behind: 100, viewEvents: 1_001, age: 1), "under 10 % growth, young snapshot")
        #expect(policy.isDue(behind: 100, viewEvents: 1_000_000, age: 60), "old snapshot")
    }
}
