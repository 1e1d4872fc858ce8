import Testing
@testable import EventStore
@testable import OutOfStock

@Suite struct EncodingTests {
    @Test func dataRoundTripsThroughTheBinaryEncoding() throws {
        var data = EventData()
        data[.recordId] = .string("R-000123")
        data[.quantity] = .integer(120)
        data[.price] = .number(18.5)
        data[.sizes] = .strings(["S", "M", "XL"])
        data[.notes] = .string("naïve \"quoted\", with commas\nand lines")
        data[.customerName] = .string("Ada")
        data[.productName] = .string("Shirt")
        let decoded = try EventData.decode(data.encoded(), type: "OutOfStockReported", schemaVersion: 2)
        #expect(decoded == data)
    }

    /// Data is held as its encoding in field-number order, whatever order fields are set
    /// in, replaced or removed in; stored data out of that order (or with a field twice, or
    /// an unknown field) decodes to the same canonical bytes.
    @Test func dataIsCanonicalWhateverTheOrderOfChanges() throws {
        var inOrder = EventData()
        inOrder[.recordId] = .string("R-1")
        inOrder[.quantity] = .integer(3)
        inOrder[.notes] = .string("a note longer than fifteen bytes")
        inOrder[.productName] = .string("Shirt")
        var shuffled = EventData()
        shuffled[.productName] = .string("old name")
        shuffled[.notes] = .string("a note longer than fifteen bytes")
        shuffled[.size] = .string("M")
        shuffled[.recordId] = .string("R-1")
        shuffled[.quantity] = .integer(-7)
        shuffled[.size] = nil
        shuffled[.quantity] = .integer(3)
        shuffled[.productName] = .string("Shirt")
        #expect(shuffled == inOrder)
        #expect(shuffled.encoded() == inOrder.encoded())
        #expect(shuffled.fields == [.recordId, .quantity, .notes, .productName])
        #expect(shuffled.string(.notes) == "a note longer than fifteen bytes" && shuffled.integer(.quantity) == 3 && shuffled.string(.size) == nil)
        // quantity (tag 0x28) before recordId (0x0a), recordId twice (the last wins), field 30 unknown.
        let stored: [UInt8] = [0x28, 0x06, 0x0A, 1, 0x58, 0xF2, 1, 0x7A, 0x0A, 3, 0x52, 0x2D, 0x31]
        let decoded = try EventData.decode(stored, type: "DeliveryRecorded", schemaVersion: 1)
        var expected = EventData()
        expected[.recordId] = .string("R-1")
        expected[.quantity] = .integer(3)
        #expect(decoded == expected)
        #expect(decoded.encoded() == [0x0A, 3, 0x52, 0x2D, 0x31, 0x28, 0x06])
        // What a resend compares: the producer's fields, not the names the store adds.
        #expect(inOrder.hasSameProducerFields(as: {
            var other = inOrder
            other[.productName] = nil
            return other
        }()))
        #expect(!inOrder.hasSameProducerFields(as: expected))
    }

    /// A producer may send its keys in any order (sorted by name, say): the event is the
    /// same, byte for byte, and so is its resend fingerprint.
    @Test func fieldsInAnyOrderGiveTheSameData() throws {
        let parser = try InputParser()
        let inSchemaOrder = #"{"type":"OutOfStockReported","actor":"u1","data":{"recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":2,"notes":"a note longer than fifteen bytes"}}"#
        let sortedByName = #"{"actor":"u1","data":{"customerId":"C-1","notes":"a note longer than fifteen bytes","productId":"P-1","quantity":2,"recordId":"R-1","size":"M"},"type":"OutOfStockReported"}"#
        guard case let .success(a) = parser.parse(inSchemaOrder), case let .success(b) = parser.parse(sortedByName) else {
            Issue.record("a line was refused")
            return
        }
        #expect(a.data == b.data)
        #expect(b.data.encoded() == a.data.encoded())
        #expect(b.data.fields == [.recordId, .customerId, .productId, .size, .quantity, .notes])
        #expect(a.resendFingerprint == b.resendFingerprint)
        #expect(b.stream == "R-1" && b.streamName == "record/R-1")
    }

    /// A price of -0 is 0: stored as 0, and -0 stored by an earlier build reads as 0, so a
    /// resend of either is the same event.
    @Test func negativeZeroIsZero() throws {
        let parser = try InputParser()
        let line = #"{"type":"ProductRegistered","actor":"u1","data":{"productId":"P-1","sku":"S","name":"N","sizes":["M"],"price":-0.0}}"#
        guard case let .success(parsed) = parser.parse(line) else {
            Issue.record("refused")
            return
        }
        #expect(parsed.data.number(.price)?.bitPattern == 0)
        var older = parsed.data
        older[.price] = .number(-0.0)
        #expect(older.number(.price)?.sign == .minus)
        let decoded = try EventData.decode(older.encoded(), type: "ProductRegistered", schemaVersion: 1)
        #expect(decoded.number(.price)?.bitPattern == 0)
        #expect(decoded.hasSameProducerFields(as: parsed.data))
    }

    /// An OutOfStockReported written as schema version 1 (before the names were kept), as
    /// bytes frozen here, read through today's decode path.
    @Test func versionOneEventsAreUpcastOnRead() throws {
        // Fields: recordId (tag 1, bytes) "R-1", customerId (2) "C-1", productId (3) "P-1",
        // quantity (5, varint zigzag) 120 — exactly what version 1 wrote.
        let v1: [UInt8] = [0x0A, 3, 0x52, 0x2D, 0x31, 0x12, 3, 0x43, 0x2D, 0x31, 0x1A, 3, 0x50, 0x2D, 0x31, 0x28, 0xF0, 0x01]
        let data = try EventData.decode(v1, type: "OutOfStockReported", schemaVersion: 1)
        #expect(data.string(.recordId) == "R-1")
        #expect(data.string(.customerId) == "C-1")
        #expect(data.string(.productId) == "P-1")
        #expect(data.integer(.quantity) == 120)
        #expect(data.string(.customerName) == nil, "v1 did not keep names")
        // And the state machine reads it like a current event.
        let state = StreamState.none.evolved(by: "OutOfStockReported", data)
        #expect(state == .record(RecordState(status: .pending, quantity: 120, delivered: 0, customerId: "C-1", productId: "P-1", size: nil)))
    }

    @Test func newerSchemaVersionsAndDamagedDataAreRejected() {
        #expect(throws: InputError.self) { try EventData.decode([], type: "OutOfStockReported", schemaVersion: 3) }
        #expect(throws: InputError.self) { try EventData.decode([0x0A, 9, 0x52], type: "OutOfStockReported", schemaVersion: 2) }
        #expect(throws: InputError.self) { try EventData.decode([0x0F], type: "OutOfStockReported", schemaVersion: 2) }
        #expect(throws: InputError.self) { try EventData.decode([], type: "NoSuchType", schemaVersion: 1) }
        // Unknown field numbers from a newer writer are skipped.
        let withUnknown: [UInt8] = [0x0A, 1, 0x52, 0xFA, 2, 0x78, 0x79]
        #expect((try? EventData.decode(withUnknown, type: "OutOfStockDeleted", schemaVersion: 1))?.string(.recordId) == "R")
    }

    @Test func timestampsParseRFC3339Strictly() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2026-11-22T09:41:07.250Z") == 1_795_340_467_250_000)
        #expect(Timestamp.parse("2026-11-22T10:41:07.25+01:00") == 1_795_340_467_250_000)
        #expect(Timestamp.parse("2026-11-22t09:41:07.250123456z") == 1_795_340_467_250_123)
        #expect(Timestamp.parse("2024-02-29T00:00:00Z") != nil)
        for bad in ["2026-02-30T00:00:00Z", "2026-11-22T09:41:07", "2026-11-22 09:41:07Z", "2026-13-01T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T09:41:07.Z", "x"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
        #expect(Timestamp.format(1_795_340_467_250_000) == "2026-11-22T09:41:07.250Z")
    }

    /// Random bytes, truncations and mutations of valid lines: never a crash, always a
    /// clear verdict with the line number.
    @Test func mutatedAndTruncatedLinesNeverCrashTheParser() throws {
        let parser = try InputParser()
        var random = StateMachinePropertyTests.Random(seed: 99)
        let seeds = setupLines + files(schemasDirectory + "/examples", suffix: ".json").map { text(schemasDirectory + "/examples/" + $0) }
        var accepted = 0, rejected = 0
        for n in 0..<20_000 {
            var bytes = Array((seeds.randomElement(using: &random) ?? "").utf8)
            switch n % 4 {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
            case 1: for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
            case 2: bytes = (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            default: if !bytes.isEmpty { bytes.insert(contentsOf: Array("[{\"\\u0000".utf8).shuffled(using: &random), at: Int.random(in: 0..<bytes.count, using: &random)) }
            }
            let result = bytes.withUnsafeBytes { parser.parse($0, line: n + 1) }
            switch result {
            case .success: accepted += 1
            case let .failure(error):
                rejected += 1
                #expect(error.line == n + 1)
                #expect(!error.message.isEmpty)
            }
        }
        #expect(rejected > 10_000 && accepted > 0)
    }
}
