import Foundation
import Testing
@testable import BackorderCLI
import EventLog
import OutOfStock

/// `backorder audit …` end to end, through the built executable.
@Suite(.serialized) struct AuditCommandTests {
    /// A small hand-made history: a customer, a product, a request amended, partly
    /// delivered and closed, with notes that need quoting in CSV.
    private static let lines = [
        #"{"id":"00000000-0000-4000-8000-000000000001","type":"CustomerRegistered","tenant":"acme","at":"2026-03-01T09:00:00Z","actor":"ann","data":{"customerId":"C-1","number":"1","name":"Berg, \"Ski\" & Co"}}"#,
        #"{"id":"00000000-0000-4000-8000-000000000002","type":"ProductRegistered","tenant":"acme","at":"2026-03-01T09:01:00Z","actor":"ann","data":{"productId":"P-1","sku":"S1","name":"Parka","sizes":["M","L"]}}"#,
        #"{"id":"00000000-0000-4000-8000-000000000003","type":"OutOfStockReported","tenant":"acme","at":"2026-03-02T10:00:00Z","actor":"bob","data":{"recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":5,"notes":"first, \"urgent\"\nline two"}}"#,
        #"{"id":"00000000-0000-4000-8000-000000000004","type":"OutOfStockAmended","tenant":"acme","at":"2026-03-03T10:00:00Z","actor":"cy","data":{"recordId":"R-1","quantity":8,"size":"L"}}"#,
        #"{"id":"00000000-0000-4000-8000-000000000005","type":"DeliveryRecorded","tenant":"acme","at":"2026-03-04T10:00:00Z","actor":"bob","data":{"recordId":"R-1","quantity":3}}"#,
        #"{"id":"00000000-0000-4000-8000-000000000006","type":"OutOfStockClosed","tenant":"acme","at":"2026-03-05T10:00:00Z","actor":"ann","data":{"recordId":"R-1","reason":"customer gave up"}}"#,
    ]

    private func store(_ lines: [String], in dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (status, _, err) = try runBackorder(["append", "-", "--data", dir], stdin: lines.joined(separator: "\n") + "\n")
        #expect(status == 0, "\(err)")
    }

    @Test func verifyReportsIntactThenLocatesAnEditedByteAndAHeadMismatch() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, generated, _) = try runBackorder(["generate", "--events", "3000", "--seed", "3", "--customers", "40", "--products", "20"])
        try store(generated.split(separator: "\n").map(String.init), in: dir)
        let heads = dir + "/heads.txt"
        let (status, out, err) = try runBackorder(["audit", "verify", "--data", dir, "--write-head", heads])
        #expect(status == 0, "\(err)")
        #expect(out.hasPrefix("intact: 8 partitions (hash-chained)") && out.contains("3000 events"), "\(out)")
        #expect(out.contains("partition 7 end "))
        let (headStatus, headOut, _) = try runBackorder(["audit", "head", "--data", dir])
        let written = try String(contentsOfFile: heads, encoding: .utf8)
        #expect(headStatus == 0 && headOut == written)

        // A signed-off head that no longer matches.
        var text = try String(contentsOfFile: heads, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("partition 3 ") })
        let changed = line.dropLast(1) + (line.last == "0" ? "1" : "0")
        text = text.replacingOccurrences(of: line, with: changed)
        try text.write(toFile: heads, atomically: true, encoding: .utf8)
        let (mismatch, mismatchOut, _) = try runBackorder(["audit", "verify", "--data", dir, "--expect-head", heads])
        #expect(mismatch == 1)
        #expect(mismatchOut.contains("DAMAGED partition 3:") && mismatchOut.contains("history up to there was rewritten"), "\(mismatchOut)")

        // One byte of one stored event.
        let segment = dir + "/log/partition-0005/00000000000000000000.log"
        var bytes = [UInt8](FileManager.default.contents(atPath: segment) ?? Data())
        #expect(bytes.count > 200)
        bytes[150] ^= 0x01
        #expect(FileManager.default.createFile(atPath: segment, contents: Data(bytes)))
        let (damaged, damagedOut, damagedErr) = try runBackorder(["audit", "verify", "--data", dir])
        #expect(damaged == 1)
        #expect(damagedOut.contains("DAMAGED partition 5: \(segment) at byte 0, event offset 0: batch CRC32C mismatch"), "\(damagedOut)")
        #expect(damagedErr.contains("1 problem(s) found"))
        let (headRefused, _, headErr) = try runBackorder(["audit", "head", "--data", dir])
        #expect(headRefused == 1 && headErr.contains("not signed off"))
    }

    @Test func historyShowsWhoWhenAndEachFieldBeforeAndAfter() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Self.lines, in: dir)
        let (status, out, err) = try runBackorder(["audit", "history", "R-1", "--tenant", "acme", "--data", dir])
        #expect(status == 0, "\(err)")
        #expect(out.contains("Record R-1, tenant acme: 4 events (stream index"), "\(out)")
        #expect(out.contains("v2  2026-03-03T10:00:00.000Z  OutOfStockAmended  by cy"))
        #expect(out.contains("quantity: 5 → 8") && out.contains("size: M → L"))
        #expect(out.contains("delivered: 0 → 3"))
        #expect(out.contains("status: pending → completed") && out.contains("reason: (none) → \"customer gave up\""))

        let (jsonStatus, json, _) = try runBackorder(["audit", "history", "R-1", "--tenant", "acme", "--data", dir, "--json"])
        #expect(jsonStatus == 0)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(entries.map { $0["actor"] as? String } == ["bob", "cy", "bob", "ann"])
        let amended = try #require(entries[1]["changes"] as? [[String: String]])
        #expect(amended.contains { $0["field"] == "quantity" && $0["before"] == "5" && $0["after"] == "8" })

        let (unknown, _, unknownErr) = try runBackorder(["audit", "history", "R-404", "--tenant", "acme", "--data", dir])
        #expect(unknown == 1 && unknownErr.contains("no record R-404 in tenant acme"), "\(unknownErr)")
    }

    @Test func historyStillWorksWithoutTheStreamIndex() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Self.lines, in: dir)
        try FileManager.default.removeItem(atPath: dir + "/index")
        let (status, out, _) = try runBackorder(["audit", "history", "R-1", "--tenant", "acme", "--data", dir])
        #expect(status == 0 && out.contains("4 events (partition scanned"), "\(out)")
    }

    @Test func exportFiltersAndQuotesCSV() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Self.lines, in: dir)
        let file = dir + "/out.csv"
        let (status, _, err) = try runBackorder(["audit", "export", "--format", "csv", "--customer", "C-1", "--out", file, "--data", dir])
        #expect(status == 0 && err.contains("exported 5 of 6 events"), "\(err)")
        let csv = try String(contentsOfFile: file, encoding: .utf8)
        let rows = parseCSV(csv)
        #expect(rows.first == ExportRow.columns)
        #expect(rows.count == 6 && rows.dropFirst().allSatisfy { $0.count == ExportRow.columns.count })
        // The customer's name, with a comma and quotes, survives the round trip.
        let customerData = try #require(rows.dropFirst().first { $0[5] == "CustomerRegistered" }?.last)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(customerData.utf8)) as? [String: Any])
        #expect(decoded["name"] as? String == #"Berg, "Ski" & Co"#)

        let (byActor, ndjson, _) = try runBackorder(["audit", "export", "--actor", "bob", "--data", dir])
        #expect(byActor == 0)
        let events = ndjson.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.map { $0["type"] as? String } == ["OutOfStockReported", "DeliveryRecorded"])
        let notes = (events.first?["data"] as? [String: Any])?["notes"] as? String
        #expect(notes == "first, \"urgent\"\nline two")

        let (byTime, timed, _) = try runBackorder(["audit", "export", "--from", "2026-03-03", "--to", "2026-03-05", "--type", "DeliveryRecorded,OutOfStockAmended", "--data", dir])
        #expect(byTime == 0 && timed.split(separator: "\n").count == 2)
        let (badType, _, badErr) = try runBackorder(["audit", "export", "--type", "Nope", "--data", dir])
        #expect(badType != 0 && badErr.contains("unknown event type Nope"))
    }

    @Test func exportByCustomerKeepsTenantsApart() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Tenant "other" has its own R-1, for another customer.
        let other = Self.lines.prefix(3).enumerated().map { i, line in
            line.replacingOccurrences(of: "\"tenant\":\"acme\"", with: "\"tenant\":\"other\"")
                .replacingOccurrences(of: "-000000000001", with: "-000000000011")
                .replacingOccurrences(of: "-000000000002", with: "-000000000012")
                .replacingOccurrences(of: "-000000000003", with: "-000000000013")
                .replacingOccurrences(of: i == 1 ? "\"P-1\"" : "\"C-1\"", with: i == 1 ? "\"P-1\"" : "\"C-2\"")
        }
        try store(Self.lines + other, in: dir)
        let (status, out, err) = try runBackorder(["audit", "export", "--customer", "C-1", "--data", dir])
        #expect(status == 0 && err.contains("exported 5 of 9 events"), "\(err)")
        #expect(!out.contains("\"tenant\":\"other\""))
        let (otherStatus, otherOut, _) = try runBackorder(["audit", "export", "--customer", "C-2", "--data", dir])
        #expect(otherStatus == 0 && otherOut.split(separator: "\n").count == 2 && !otherOut.contains("\"tenant\":\"acme\""))
    }

    @Test func csvFieldsAreQuotedOnlyWhenNeeded() {
        #expect(csvField("plain") == "plain")
        #expect(csvField("a,b") == "\"a,b\"")
        #expect(csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(csvField("two\nlines") == "\"two\nlines\"")
        #expect(csvField("cr\r") == "\"cr\r\"")
        #expect(csvField(" padded") == "\" padded\"")
        #expect(csvField("") == "")
        #expect(parseCSV("a,\"b,\"\"c\"\"\nd\"\r\n") == [["a", "b,\"c\"\nd"]])
    }

    @Test func asOfAnswersFromTheEventsRecordedByThenAndRefusesEarlierTimes() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Array(Self.lines.prefix(3)), in: dir)
        Thread.sleep(forTimeInterval: 1.1)
        let between = Timestamp.format(Int64(Date().timeIntervalSince1970 * 1_000_000))
        Thread.sleep(forTimeInterval: 0.1)
        try store(Array(Self.lines.dropFirst(3)), in: dir)

        let (then, thenOut, thenErr) = try runBackorder(["audit", "as-of", between, "query", "record", "R-1", "--tenant", "acme", "--data", dir])
        #expect(then == 0, "\(thenErr)")
        let old = try #require(try JSONSerialization.jsonObject(with: Data(thenOut.utf8)) as? [String: Any])
        #expect(old["quantity"] as? Int == 5 && old["status"] as? String == "pending" && old["size"] as? String == "M")

        let (now, nowOut, _) = try runBackorder(["audit", "as-of", "2100-01-01", "record", "R-1", "--tenant", "acme", "--data", dir])
        #expect(now == 0)
        let current = try #require(try JSONSerialization.jsonObject(with: Data(nowOut.utf8)) as? [String: Any])
        #expect(current["quantity"] as? Int == 8 && current["status"] as? String == "completed")

        let (dashboard, dashboardOut, _) = try runBackorder(["audit", "as-of", between, "query", "dashboard", "--tenant", "acme", "--data", dir])
        #expect(dashboard == 0 && dashboardOut.contains("\"requests\":1"), "\(dashboardOut)")

        let (early, _, earlyErr) = try runBackorder(["audit", "as-of", "2000-01-01", "query", "dashboard", "--tenant", "acme", "--data", dir])
        #expect(early == 1 && earlyErr.contains("is before the first event"), "\(earlyErr)")
        // Each replay's scratch view is removed whole (an empty directory per run was left).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/views") == ["records"])
    }

    @Test func replayToPrintsTheViewAtThatPointWithoutSavingIt() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Self.lines, in: dir)
        let views = { (try? FileManager.default.contentsOfDirectory(atPath: dir + "/views/records"))?.sorted() }
        let before = views()
        let (status, out, err) = try runBackorder(["replay", "--to", "2100-01-01", "--data", dir])
        #expect(status == 0 && out.hasPrefix("{\"tenant\":\"acme\",\"dashboard\":") && out.contains("\"requests\":1"), "\(out) \(err)")
        #expect(err.contains("6 events") && err.contains("not saved"))
        #expect(views() == before, "replay --to saves nothing")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/views") == ["records"], "nor leaves its scratch view")
        let (zero, zeroOut, _) = try runBackorder(["replay", "--to", Array(repeating: "0", count: 8).joined(separator: ","), "--data", dir])
        #expect(zero == 0 && zeroOut.isEmpty)
        let (bad, _, badErr) = try runBackorder(["replay", "--to", "1,2", "--data", dir])
        #expect(bad == 1 && badErr.contains("8 offsets"))
    }

    @Test func inspectShowsEachBatchsChainHashAndLink() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store(Self.lines, in: dir)
        let segments = (0..<8).map { dir + "/log/partition-000\($0)/00000000000000000000.log" }
            .filter { ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0) > 0 }
        let segment = try #require(segments.first)
        let (status, out, _) = try runBackorder(["inspect", segment])
        #expect(status == 0)
        #expect(out.contains("  chain ") && out.contains(" link ok"), "\(out)")
    }

    /// A minimal RFC 4180 reader for the tests (quoted fields, doubled quotes, CRLF).
    private func parseCSV(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                row.append(field); field = ""
            } else if c == "\r\n" || c == "\n" {
                row.append(field); field = ""
                rows.append(row); row = []
            } else {
                field.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
