import Foundation
import Testing
@testable import OutOfStock

/// The repository's schemas/ directory, found from this file's path.
let schemasDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("schemas/v1").path
}()

func files(_ directory: String, suffix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
}

func text(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .newlines) ?? ""
}

@Suite struct SchemaConformanceTests {
    @Test func everyExampleIsAccepted() throws {
        let examples = files(schemasDirectory + "/examples", suffix: ".json")
        #expect(examples.count == EventType.all.count, "one example per event type")
        let parser = try InputParser()
        for name in examples {
            let result = parser.parse(text(schemasDirectory + "/examples/" + name))
            guard case let .success(event) = result else { Issue.record("\(name): \(result)"); continue }
            #expect(event.type.name + ".json" == name)
        }
    }

    @Test func everyCounterExampleIsRejectedNamingTheExpectedField() throws {
        let directory = schemasDirectory + "/counter-examples"
        let cases = files(directory, suffix: ".json")
        #expect(cases.count >= 16)
        let parser = try InputParser()
        for name in cases {
            let expected = text(directory + "/" + name.dropLast(5) + ".expected")
            switch parser.parse(text(directory + "/" + name), line: 7) {
            case .success:
                Issue.record("\(name) was accepted")
            case let .failure(error):
                #expect(error.line == 7)
                #expect(error.field == expected, "\(name): \(error)")
                #expect(!error.message.isEmpty)
            }
        }
    }

    /// The event types and their fields in code are those of the JSON Schemas.
    /// Messages say what the value is: an integer beyond Int64 is not "not an integer",
    /// a fraction is named, and a byte order mark is named instead of "invalid JSON".
    @Test func messagesNameWhatTheValueIs() throws {
        let parser = try InputParser()
        func message(_ line: String) -> String {
            let bytes = Array(line.utf8)
            return bytes.withUnsafeBytes { raw in
                if case let .failure(error) = parser.parse(raw, line: 1) { return error.description }
                return "accepted"
            }
        }
        let head = #"{"type":"OutOfStockReported","tenant":"t1","at":"2026-01-01T00:00:00Z","actor":"u1","data":{"recordId":"R-1","customerId":"C-1","productId":"P-1","quantity":"#
        #expect(message(head + "9223372036854775808}}").contains("not 9223372036854775808, which is beyond the largest integer"))
        #expect(message(head + "2.5}}").contains("not a number with a fraction (2.5)"))
        #expect(message(head + "\"2\"}}").contains("must be an integer, not a string"))
        #expect(message("\u{FEFF}" + head + "2}}").contains("byte order mark"))
    }

    @Test func codeAndSchemasDeclareTheSameTypesAndFields() throws {
        let envelope = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: schemasDirectory + "/envelope.schema.json"))) as? [String: Any]
        let properties = envelope?["properties"] as? [String: Any]
        let typeEnum = (properties?["type"] as? [String: Any])?["enum"] as? [String]
        #expect(Set(typeEnum ?? []) == Set(EventType.all.keys))
        for (name, type) in EventType.all {
            let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: schemasDirectory + "/\(name).schema.json"))) as? [String: Any]
            let required = Set(schema?["required"] as? [String] ?? [])
            let all = Set((schema?["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
            #expect(required == Set(type.required.map(\.name)), "\(name) required fields")
            #expect(all == Set((type.required + type.optional).map(\.name)), "\(name) fields")
            #expect((schema?["minProperties"] as? Int == 2) == type.needsChange, "\(name) minProperties")
        }
    }
}
