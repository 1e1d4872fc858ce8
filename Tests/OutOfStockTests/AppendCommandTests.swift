import Foundation
import Testing
import OutOfStock
import Projections
import RecordsView
import TestSupport

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
    let child = try runChild(executable, arguments, input: stdin)
    return (child.status, child.standardOutput, child.standardError)
}

struct CLIError: Error { let message: String }

/// `backorder generate --events N --seed S` (plus `options`), as lines.
func generatedInput(events: Int, seed: Int, _ options: [String] = []) throws -> [String] {
    let (status, generated, err) = try runBackorder(["generate", "--events", String(events), "--seed", String(seed)] + options)
    guard status == 0 else { throw CLIError(message: "generate failed (\(status)): \(err.prefix(300))") }
    return generated.split(separator: "\n").map(String.init)
}

@Suite(.serialized) struct AppendCommandTests {
    @Test func generateAppendAppendAgainAndConflict() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let input = dir + "/events.ndjson"
        let (genStatus, generated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "5", "--customers", "50", "--products", "20", "--end", "2026-12-01"])
        #expect(genStatus == 0)
        try generated.write(toFile: input, atomically: true, encoding: .utf8)
        #expect(generated.split(separator: "\n").count == 3_000)
        let (again, regenerated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "5", "--customers", "50", "--products", "20", "--end", "2026-12-01"])
        #expect(again == 0 && regenerated == generated, "the generator is deterministic")
        let times = generated.split(separator: "\n").compactMap { $0.firstMatch(of: /"at":"([^"]+)"/).map { String($0.1) } }
        #expect(times.count == 3_000 && times.max() == "2026-12-01T00:00:00.000Z", "no event after --end: \(times.max() ?? "")")

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
        // Lines with ids, twice: the second time the valid lines are stored already; the
        // status and the advice must not change because of it.
        let withIDs = try generatedInput(events: 20, seed: 9) + [line("DeliveryRecorded", #""recordId":"R-1","quantity":"ten""#)]
        for run in 1...2 {
            let (status, out, err) = try runBackorder(["append", "-", "--data", dir + "-ids", "--skip-invalid", "--rejected", dir + "-ids-rejected.ndjson"],
                                                      stdin: withIDs.joined(separator: "\n"))
            #expect(status == 3, "run \(run): \(out) \(err)")
            #expect(out.contains(run == 1 ? "appended 20 events" : "20 duplicates"), "run \(run): \(out)")
            #expect(!err.contains("use --skip-invalid"), "run \(run): \(err)")
        }
        for path in [dir + "-ids", dir + "-ids-rejected.ndjson"] { try? FileManager.default.removeItem(atPath: path) }

        // Rejected lines go to their file as they are found: a path that cannot be written
        // fails the run before anything is appended, and says why.
        let (status3, out3, err3) = try runBackorder(["append", "-", "--data", dir + "-nodir", "--json", "--skip-invalid", "--rejected", dir + "-missing/rejected.ndjson"],
                                                     stdin: lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: dir + "-nodir") }
        #expect(status3 == 1 && out3.isEmpty, "\(out3)")
        #expect(err3.contains("cannot write the rejected lines to \(dir)-missing/rejected.ndjson") && err3.contains("No such file or directory"), "\(err3)")
    }

    /// A line over the 4 MiB limit is a rejected line like any other — read past in bounded
    /// memory, named with its number and length — not the end of the run: with
    /// `--skip-invalid` the other lines go in; without it, nothing does.
    @Test func aLineOverTheLengthLimitIsRejectedAndTheRestGoesOn() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines = try generatedInput(events: 6, seed: 5)
        let huge = line("CustomerRegistered", "\"customerId\":\"C-HUGE\",\"name\":\"" + String(repeating: "x", count: 5_000_000) + "\"")
        lines.insert(huge, at: 3)
        let input = dir + "/input.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)

        let (strict, _, strictErr) = try runBackorder(["append", input, "--data", dir + "/strict"])
        #expect(strict == 1)
        #expect(strictErr.contains("line 4: line of \(huge.utf8.count) bytes is longer than the limit of 4194304 bytes"), "\(strictErr.prefix(400))")
        #expect(strictErr.contains("nothing was appended"))

        let (skipping, out, err) = try runBackorder(["append", input, "--data", dir + "/skipping", "--skip-invalid", "--rejected", dir + "/rejected.ndjson"])
        #expect(skipping == 3, "\(err.prefix(400))")
        #expect(out.contains("appended 6 events") && out.contains("1 rejected"), "\(out.prefix(400))")
        #expect(out.contains("no rejected line written") && out.contains("1 too long to keep"), "\(out.prefix(400))")
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
        #expect(status8 == 0 && snap.contains("view records (gen-") && snap.contains("(2000 events)"), "\(snap)")
        let (status9, replay, _) = try runBackorder(["replay", "--all", "--data", dir])
        #expect(status9 == 0 && replay.contains("rebuilt view records from 2000 events"))
        // The answer is the same from the snapshot as from the rebuild.
        let (_, again, _) = try runBackorder(["query", "dashboard", "--data", dir, "--json", "--now", "2026-12-31T00:00:00Z"])
        #expect(again == out, "the dashboard from the rebuilt view differs from the incremental one")
        let (status10, _, err10) = try runBackorder(["query", "dashboard", "--data", dir + "-missing"])
        #expect(status10 == 1 && err10.contains("not a Backorder log"))
    }

    /// Queries give the same answers from the saved view, from a view caught up in memory,
    /// and after a damaged view file (reported with its path) was rebuilt by `replay`.
    @Test func savedAndCaughtUpViewsGiveTheSameAnswers() throws {
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
        #expect(FileManager.default.fileExists(atPath: dir + "/views/records/CURRENT"), "append brought the view up to date and saved it")
        let saved = try answers()
        #expect(saved.err.isEmpty, "answered from the saved view: \(saved.err)")

        // Behind the log: a query applies the newer events in memory first (current by
        // default), or with --stale-ok answers from the saved view and says what it leaves out.
        #expect(try runBackorder(["append", "-", "--data", dir, "--skip-views"], stdin: rest).0 == 0)
        let (_, staleOut, staleErr) = try runBackorder(["query", "dashboard", "--json", "--now", "2026-12-31T00:00:00Z", "--data", dir, "--stale-ok"])
        #expect(staleErr.contains("leaves out the newest 1000 events"), "\(staleErr)")
        let caughtUp = try answers()
        #expect(caughtUp.err.isEmpty, "\(caughtUp.err)")
        #expect(staleOut == saved.out[0], "the stale answer is the saved view's")
        #expect(try runBackorder(["snapshot", "--data", dir]).0 == 0)
        let current = try answers()
        #expect(current.err.isEmpty)
        #expect(current.out == caughtUp.out, "the saved view answers as the caught-up one did")
        #expect(current.out != saved.out, "the later events changed the answers")

        // A damaged view file is reported with its path, and `replay` rebuilds the view.
        let generation = try String(contentsOfFile: dir + "/views/records/CURRENT", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let folder = dir + "/views/records/" + generation
        let table = try #require(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sst") }.sorted().first)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder + "/" + table)))
        for k in stride(from: 0, to: bytes.count - 48, by: 97) { bytes[k] ^= 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: folder + "/" + table))
        let (damagedStatus, _, damagedErr) = try runBackorder(["query", "dashboard", "--data", dir])
        #expect(damagedStatus == 1 && damagedErr.contains(table) && damagedErr.contains("corruption"), "\(damagedErr)")
        let (replayStatus, replayOut, replayErr) = try runBackorder(["replay", "--data", dir])
        #expect(replayStatus == 0 && replayOut.contains("rebuilt view records from 3000 events"), "\(replayOut) \(replayErr)")
        #expect(try answers().out == current.out, "the rebuilt view answers as before")
    }

    /// A tenant without data is named as such, with the tenants there are.
    @Test func unknownTenantsAreNamed() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, generated, _) = try runBackorder(["generate", "--events", "300", "--seed", "5", "--customers", "20", "--products", "10"])
        #expect(try runBackorder(["append", "-", "--data", dir], stdin: generated).0 == 0)
        let (nobody, _, nobodyErr) = try runBackorder(["query", "dashboard", "--tenant", "nobody", "--data", dir])
        #expect(nobody == 1 && nobodyErr.contains("tenant nobody has no data") && nobodyErr.contains("tenants: default"), "\(nobodyErr)")
    }

}
