import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock

/// Builds input lines for rule tests.
func line(_ type: String, _ data: String, id: String? = nil, at: String = "2026-03-01T10:00:00Z", extra: String = "") -> String {
    let idPart = id.map { "\"id\":\"\($0)\"," } ?? ""
    return "{\(idPart)\"type\":\"\(type)\",\"tenant\":\"acme\",\"at\":\"\(at)\",\"actor\":\"u001\"\(extra),\"data\":{\(data)}}"
}

let setupLines = [
    line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"Ada & Co, \"Ltd\"","region":"North""#),
    line("CustomerRegistered", #""customerId":"C-2","number":"2","name":"Gone Ltd""#),
    line("CustomerRemoved", #""customerId":"C-2""#),
    line("ProductRegistered", #""productId":"P-1","sku":"TS-1","name":"T-shirt","sizes":["S","M","L"],"price":12.5"#),
    line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":100"#),
]

/// Runs lines through a fresh store; returns the report.
func ingest(_ lines: [String], into directory: String, options: IngestOptions = IngestOptions()) async throws -> IngestReport {
    var storeOptions = StoreOptions()
    storeOptions.log.partitionCount = 2
    storeOptions.log.lockTimeoutMilliseconds = 5_000
    let store = try await EventStore.open(at: directory, options: storeOptions)
    let path = directory + "-input-\(UUID().uuidString.prefix(6)).ndjson"
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var reader = LineReader(fd: fd, name: path)
    let report: IngestReport
    do { report = try await Ingestor(store: store, options: options).ingest(&reader) } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
    return report
}

/// Every event the store holds, partition by partition, in offset order.
func allStoredEvents(_ store: EventStore) throws -> [StoredEvent] {
    var events: [StoredEvent] = []
    for partition in 0..<store.partitionCount {
        var cursor = try store.events(partition: partition, from: 0)
        while let batch = try cursor.next() { events += batch }
    }
    return events
}

func freshDirectory(_ name: String = #function) -> String {
    NSTemporaryDirectory() + "backorder-domain-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
}

@Suite struct DomainRuleTests {
    /// Each case: lines after the setup, and the expected rejection (line, field, words of the rule).
    @Test(arguments: [
        ([line("DeliveryRecorded", #""recordId":"R-1","quantity":101"#)], 6, "data.quantity", "exceeds the remaining 100"),
        ([line("DeliveryRecorded", #""recordId":"R-1","quantity":100"#), line("RefundRecorded", #""recordId":"R-1""#)], 7, "data.recordId", "is completed"),
        ([line("DeliveryRecorded", #""recordId":"R-9","quantity":1"#)], 6, "data.recordId", "unknown record R-9"),
        ([line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","quantity":5"#)], 6, "data.recordId", "already reported"),
        ([line("DeliveryRecorded", #""recordId":"R-1","quantity":40"#), line("OutOfStockAmended", #""recordId":"R-1","quantity":30"#)], 7, "data.quantity", "less than the 40 already delivered"),
        ([line("OutOfStockReported", #""recordId":"R-2","customerId":"C-404","productId":"P-1","quantity":5"#)], 6, "data.customerId", "unknown customer C-404"),
        ([line("OutOfStockReported", #""recordId":"R-2","customerId":"C-2","productId":"P-1","quantity":5"#)], 6, "data.customerId", "was removed"),
        ([line("OutOfStockReported", #""recordId":"R-2","customerId":"C-1","productId":"P-1","size":"XXL","quantity":5"#)], 6, "data.size", "comes in S, M, L"),
        ([line("CustomerRegistered", #""customerId":"C-1","number":"1","name":"Again""#)], 6, "data.customerId", "already registered"),
        ([line("CustomerUpdated", #""customerId":"C-2","name":"Back""#)], 6, "data.customerId", "was removed"),
        ([line("OutOfStockClosed", #""recordId":"R-1""#), line("DeliveryRecorded", #""recordId":"R-1","quantity":1"#)], 7, "data.recordId", "is completed"),
        ([line("OutOfStockDeleted", #""recordId":"R-1""#), line("OutOfStockDeleted", #""recordId":"R-1""#)], 7, "data.recordId", "already deleted"),
        ([line("RefundRecorded", #""recordId":"R-1""#), line("OutOfStockAmended", #""recordId":"R-1","notes":"x""#)], 7, "data.recordId", "is refunded"),
        ([line("DeliveryRecorded", #""recordId":"R-1","quantity":5"#, extra: #","expectedVersion":3"#)], 6, "expectedVersion", "is at version 1, not 3"),
        ([line("DeliveryRecorded", #""recordId":"R-1","quantity":5"#, at: "2099-01-01T00:00:00Z")], 6, "at", "2099-01-01T00:00:00.000Z is more than 3600 s after this machine's clock"),
    ])
    func ruleViolationsAreRejectedWithLineFieldAndRule(lines: [String], errorLine: Int, field: String, words: String) async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = try await ingest(setupLines + lines, into: dir)
        #expect(report.rejected == 1)
        let error = try #require(report.errors.first)
        #expect(error.line == errorLine)
        #expect(error.field == field)
        #expect(error.message.contains(words), "\(error)")
        #expect(!report.applied, "one bad line: nothing of the input is applied")
    }

    /// The clock-skew limit is configurable, and can be lifted for histories that are
    /// dated ahead on purpose.
    @Test func aTimeAheadOfTheClockIsAcceptedWithinTheSkewOrWithoutALimit() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let soon = Timestamp.format(EventStore.wallClockMicroseconds() + 600_000_000)
        let report = try await ingest(setupLines + [line("DeliveryRecorded", #""recordId":"R-1","quantity":5"#, at: soon)], into: dir)
        #expect(report.rejected == 0 && report.appended == 6, "ten minutes ahead is within the default hour: \(report.errors)")
        var options = IngestOptions()
        options.maxClockSkew = nil
        let future = try await ingest([line("DeliveryRecorded", #""recordId":"R-1","quantity":5"#, at: "2099-01-01T00:00:00Z")], into: dir, options: options)
        #expect(future.rejected == 0 && future.appended == 1, "\(future.errors)")
    }

    @Test func validLifecyclesAreAccepted() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = try await ingest(setupLines + [
            line("DeliveryRecorded", #""recordId":"R-1","quantity":40,"notes":"first""#),
            line("OutOfStockAmended", #""recordId":"R-1","quantity":60"#),
            line("DeliveryRecorded", #""recordId":"R-1","quantity":20"#),
            line("OutOfStockReported", #""recordId":"R-2","customerId":"C-1","productId":"P-1","quantity":5"#),
            line("RefundRecorded", #""recordId":"R-2","reason":"no longer needed""#),
            line("OutOfStockDeleted", #""recordId":"R-2""#),
            line("ProductUpdated", #""productId":"P-1","sizes":["S","M","L","XL"]"#),
            line("OutOfStockReported", #""recordId":"R-3","customerId":"C-1","productId":"P-1","size":"XL","quantity":7"#),
        ], into: dir)
        #expect(report.rejected == 0, "\(report.errors)")
        #expect(report.appended == 13)
        #expect(report.assignedIDs.count == 13, "lines without ids get one, reported back")
    }

    @Test func storedStateDecidesAcrossSeparateInputs() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try await ingest(setupLines, into: dir).appended == 5)
        // A second run sees the stored record (read back from the store) and its rules.
        let report = try await ingest([line("DeliveryRecorded", #""recordId":"R-1","quantity":101"#)], into: dir)
        #expect(report.errors.first?.message.contains("remaining 100") == true)
        let ok = try await ingest([line("DeliveryRecorded", #""recordId":"R-1","quantity":100"#)], into: dir)
        #expect(ok.appended == 1)
    }

    @Test func skipInvalidAppendsTheValidLinesAndKeepsTheRejected() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = IngestOptions()
        options.skipInvalid = true
        let report = try await ingest(setupLines + ["{not json", line("DeliveryRecorded", #""recordId":"R-1","quantity":999"#)], into: dir, options: options)
        #expect(report.appended == 5)
        #expect(report.rejected == 2)
        #expect(report.rejectedLines.map(\.error.line) == [6, 7])
        #expect(report.rejectedLines.first.map { String(decoding: $0.line, as: UTF8.self) } == "{not json")
    }

    /// Validated input larger than the memory bound goes through a temporary file, with
    /// the same result.
    @Test func largeInputsSpillToATemporaryFileWithTheSameResult() async throws {
        let inMemory = freshDirectory("mem"), spilled = freshDirectory("spill")
        defer {
            try? FileManager.default.removeItem(atPath: inMemory)
            try? FileManager.default.removeItem(atPath: spilled)
        }
        var lines = setupLines
        for i in 2..<300 {
            lines.append(line("OutOfStockReported", #""recordId":"R-\#(i)","customerId":"C-1","productId":"P-1","quantity":\#(i),"notes":"n \"q\" \#(i)""#,
                              id: String(format: "00000000-0000-4000-8000-%012d", i), extra: i % 3 == 0 ? #","correlationId":"c\#(i)""# : ""))
        }
        var options = IngestOptions()
        options.batchSize = 7
        let a = try await ingest(lines, into: inMemory, options: options)
        options.memoryEvents = 10
        let b = try await ingest(lines, into: spilled, options: options)
        #expect(a.rejected == 0 && b.rejected == 0, "\(a.errors.prefix(2)) \(b.errors.prefix(2))")
        #expect(a.appended == 303 && b.appended == 303)
        #expect(a.ranges == b.ranges)
        let readerA = try await EventReader.open(at: inMemory), readerB = try await EventReader.open(at: spilled)
        for partition in 0..<readerA.partitionCount {
            var ca = try readerA.events(partition: partition, from: 0), cb = try readerB.events(partition: partition, from: 0)
            var ea: [StoredEvent] = [], eb: [StoredEvent] = []
            while let batch = try ca.next() { ea += batch }
            while let batch = try cb.next() { eb += batch }
            #expect(ea.map(\.stream) == eb.map(\.stream))
            #expect(ea.map(\.data) == eb.map(\.data))
            #expect(ea.map(\.correlationId) == eb.map(\.correlationId))
            #expect(ea.filter { $0.type == "OutOfStockReported" && $0.stream != "record/R-1" }.map(\.id) == eb.filter { $0.type == "OutOfStockReported" && $0.stream != "record/R-1" }.map(\.id))
        }
    }
}
