import Foundation
import Testing

/// `backorder read`: events out in the input contract, in the order they were appended.
@Suite(.serialized) struct ReadCommandTests {
    /// Two tenants appended to one store, in two runs (so the second's events are newer).
    private static func store(_ dir: String) throws -> [String] {
        let lines = try generatedInput(events: 3_000, seed: 4, ["--tenants", "2", "--customers", "30", "--products", "10", "--end", "2026-12-01"])
        for (i, part) in [lines.prefix(2_000), lines.dropFirst(2_000)].enumerated() {
            let (status, _, err) = try runBackorder(["append", "-", "--data", dir + "/a"], stdin: part.joined(separator: "\n") + "\n")
            guard status == 0 else { throw CLIError(message: "append \(i + 1) failed: \(err.prefix(400))") }
        }
        return lines
    }

    /// A line without where and when it was stored: what two stores holding the same
    /// events must agree on.
    private static func content(_ line: Substring) -> Substring {
        line.range(of: ",\"position\":").map { line[..<$0.lowerBound] } ?? line
    }

    @Test func aTenantReadOutAndAppendedElsewhereIsTheSameTenant() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try Self.store(dir)
        let (status, out, err) = try runBackorder(["read", "--data", dir + "/a", "--tenant", "t001"])
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: "\n")
        #expect(lines.count == input.filter { $0.contains("\"tenant\":\"t001\"") }.count)
        #expect(err.contains("read \(lines.count) of 3000 events"), "\(err)")
        let (copied, copyOut, copyErr) = try runBackorder(["append", "-", "--data", dir + "/b"], stdin: out)
        #expect(copied == 0 && copyOut.contains("appended \(lines.count) events"), "\(copyErr)")
        // The same events, versions and derived names in the same order, and the same views.
        let (_, again, _) = try runBackorder(["read", "--data", dir + "/b"])
        #expect(again.split(separator: "\n").map(Self.content) == lines.map(Self.content))
        for query in [["dashboard"], ["records", "--status", "pending", "--limit", "50"], ["customer", "C-000003"]] {
            let original = try runBackorder(["query"] + query + ["--tenant", "t001", "--data", dir + "/a"])
            let copy = try runBackorder(["query"] + query + ["--tenant", "t001", "--data", dir + "/b"])
            #expect(original.0 == 0 && original.1 == copy.1, "query \(query): \(original.2) \(copy.2)")
        }
        // Read again into the copy: every line a duplicate.
        let (resent, resentOut, _) = try runBackorder(["append", "-", "--data", dir + "/b"], stdin: out)
        #expect(resent == 0 && resentOut.contains("\(lines.count) duplicates"), "\(resentOut)")
    }

    @Test func filtersLimitsAndResumePointsSplitTheSameSequence() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.store(dir)
        let data = ["--data", dir + "/a"]
        let (_, all, _) = try runBackorder(["read"] + data)
        let every = all.split(separator: "\n")
        #expect(every.count == 3_000)
        // A limit, then its resume point: the rest, no gap, no duplicate.
        let (_, head, headErr) = try runBackorder(["read", "--limit", "1234"] + data)
        let resume = try #require(headErr.firstMatch(of: /--from ([0-9,]+)/).map { String($0.1) }, "\(headErr)")
        let (_, tail, _) = try runBackorder(["read", "--from", resume] + data)
        #expect(head.split(separator: "\n") + tail.split(separator: "\n") == every)
        // Up to a resume point with --to gives the first part again.
        let (_, upTo, _) = try runBackorder(["read", "--to", resume] + data)
        #expect(upTo == head)
        // By recorded time: the second append's events.
        let second = try #require(every[2_000].firstMatch(of: /"recordedAt":"([^"]+)"/).map { String($0.1) })
        let (_, later, _) = try runBackorder(["read", "--from", second] + data)
        #expect(later.split(separator: "\n") == Array(every.dropFirst(2_000)))
        // Types, and one stream through the stream index.
        let (_, reports, _) = try runBackorder(["read", "--type", "OutOfStockReported,RefundRecorded"] + data)
        #expect(reports.split(separator: "\n") == every.filter { $0.contains("\"type\":\"OutOfStockReported\"") || $0.contains("\"type\":\"RefundRecorded\"") })
        let (_, stream, _) = try runBackorder(["read", "--tenant", "t002", "--stream", "record/R-000007"] + data)
        let expected = every.filter { $0.contains("\"tenant\":\"t002\"") && $0.contains("\"recordId\":\"R-000007\"") }
        #expect(!expected.isEmpty && stream.split(separator: "\n") == expected)
        let (_, table, _) = try runBackorder(["read", "--format", "table", "--limit", "2"] + data)
        #expect(table.split(separator: "\n").count == 3 && table.hasPrefix("POSITION"), "\(table)")
    }

    @Test func followWritesNewEventsAsTheyAreAppended() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = try generatedInput(events: 1_500, seed: 6, ["--customers", "20", "--products", "8", "--end", "2026-12-01"])
        let first = try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines.prefix(1_000).joined(separator: "\n") + "\n")
        #expect(first.0 == 0, "\(first.2)")
        let follower = try startBackorder(["read", "--data", dir + "/s", "--follow", "--poll-milliseconds", "5"], output: dir + "/follow")
        defer { if follower.isRunning { follower.terminate() } }
        func linesOut() -> Int {
            ((try? String(contentsOfFile: dir + "/follow.stdout", encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        func waitFor(_ count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(30)
            while linesOut() < count && Date() < deadline && follower.isRunning { usleep(2_000) }
            return linesOut() >= count
        }
        #expect(waitFor(1_000), "the history first")
        for part in [lines[1_000..<1_200], lines[1_200...]] {
            let (status, _, err) = try runBackorder(["append", "-", "--data", dir + "/s"], stdin: part.joined(separator: "\n") + "\n")
            #expect(status == 0, "\(err)")
            #expect(waitFor(part.endIndex), "\(linesOut()) of \(part.endIndex) lines followed")
        }
        follower.terminate()
        follower.waitUntilExit()
        // What a read after the appends gives, line for line: no gap, no duplicate, and in
        // recorded order across partitions — though each append's partitions were flushed
        // and acknowledged independently (the recorded-order cut, docs/CONSUMERS.md).
        let followed = try String(contentsOfFile: dir + "/follow.stdout", encoding: .utf8).split(separator: "\n")
        let (_, plain, _) = try runBackorder(["read", "--data", dir + "/s"])
        let expected = plain.split(separator: "\n")
        #expect(followed.count == expected.count && Set(followed) == Set(expected))
        if let k = followed.indices.first(where: { k in k < expected.count && followed[k] != expected[k] }) {
            Issue.record("line \(k + 1) followed out of recorded order: \(followed[k].prefix(120)) where a read gives \(expected[k].prefix(120))")
        }
    }

    @Test func badArgumentsAreRefusedClearly() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try runBackorder(["append", "-", "--data", dir], stdin: setupLines.joined(separator: "\n") + "\n")
        let cases: [([String], String)] = [
            (["--stream", "record/R-1"], "--stream needs --tenant"),
            (["--from", "1,2"], "give a time (RFC 3339 or YYYY-MM-DD) or 8 offsets"),
            (["--from", "0,0,0,0,0,0,0,99"], "offset 99 is outside partition 7"),
            (["--format", "xml"], "--format must be ndjson or table"),
            (["--type", "Nope"], "unknown event type Nope"),
            (["--follow", "--to", "2026-01-01"], "cannot be given with --to"),
        ]
        for (arguments, words) in cases {
            let (status, _, err) = try runBackorder(["read", "--data", dir] + arguments)
            #expect(status != 0 && err.contains(words), "\(arguments): \(status) \(err)")
        }
    }
}
