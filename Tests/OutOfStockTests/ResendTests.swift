import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock

/// Event ids are idempotency keys within a tenant: a line sent again is acknowledged as a
/// duplicate and stored once; a line that reuses an id for another event is rejected with
/// its line, the id and where the first event is; another tenant may use the same id.
@Suite struct ResendTests {
    private static func id(_ n: Int) -> String { String(format: "00000000-0000-4000-8000-%012d", n) }

    /// The setup lines with ids 1–5, plus one line (id 6) without `at`: timed at its first
    /// append, and still the same event when sent again without it.
    private static let withIDs = setupLines.enumerated().map { n, text in
        text.replacingOccurrences(of: "{\"type\"", with: "{\"id\":\"\(id(n + 1))\",\"type\"")
    } + [line("DeliveryRecorded", #""recordId":"R-1","quantity":3"#, id: id(6)).replacingOccurrences(of: "\"at\":\"2026-03-01T10:00:00Z\",", with: "")]

    @Test func aResentInputIsAllDuplicates() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await ingest(Self.withIDs, into: dir)
        #expect(first.appended == 6 && first.rejected == 0, "\(first.errors)")
        let again = try await ingest(Self.withIDs, into: dir)
        #expect(again.duplicates == 6 && again.appended == 0 && again.rejected == 0, "\(again.errors)")
    }

    @Test func aReusedIdWithOtherContentIsRejectedAndNamesTheOriginal() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await ingest(Self.withIDs, into: dir)
        let renamed = Self.withIDs[0].replacingOccurrences(of: "Ada & Co", with: "Eve & Co")
        let later = Self.withIDs[5].replacingOccurrences(of: "{\"id\"", with: "{\"at\":\"2026-03-02T00:00:00Z\",\"id\"")
        for (changed, words) in [(renamed, "CustomerRegistered of customer/C-1"), (later, "DeliveryRecorded of record/R-1")] {
            let report = try await ingest([changed], into: dir)
            #expect(report.rejected == 1 && report.duplicates == 0 && !report.applied)
            let error = try #require(report.errors.first)
            #expect(error.line == 1 && error.field == "id")
            #expect(error.message.contains("event id \(changed.contains(Self.id(1)) ? Self.id(1) : Self.id(6)) of tenant acme is already used by the event stored at"), "\(error)")
            #expect(error.message.contains(words) && error.message.contains("with other content"), "\(error)")
        }
    }

    @Test func anotherTenantMayUseTheSameIds() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await ingest(Self.withIDs, into: dir)
        let other = Self.withIDs.map { $0.replacingOccurrences(of: "\"tenant\":\"acme\"", with: "\"tenant\":\"beta\"") }
        let report = try await ingest(other, into: dir)
        #expect(report.appended == 6 && report.duplicates == 0 && report.rejected == 0, "\(report.errors)")
    }

    @Test func withinOneInputASecondLineWithTheIdMustBeTheSame() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let same = try await ingest(setupLines + [Self.withIDs[5], Self.withIDs[5]], into: dir + "-same")
        defer { try? FileManager.default.removeItem(atPath: dir + "-same") }
        #expect(same.appended == 6 && same.duplicates == 1 && same.rejected == 0, "\(same.errors)")
        let other = Self.withIDs[5].replacingOccurrences(of: "\"quantity\":3", with: "\"quantity\":4")
        let report = try await ingest(setupLines + [Self.withIDs[5], other], into: dir)
        #expect(report.rejected == 1 && !report.applied)
        let error = try #require(report.errors.first)
        #expect(error.line == 7 && error.field == "id" && error.message.contains("already used by an earlier line of this input"), "\(error)")
    }
}
