import DataGenerator
import Foundation
import Testing

/// Issue 17's damage sweep: for each kind of file in a data directory, one byte flipped at
/// 50 positions, each on a fresh copy of the same store. After each flip a fixed battery —
/// `log verify`, a dashboard query, `read`, `groups show`, and appending the whole input
/// again — must either answer exactly as on the undamaged store, or fail naming the damaged
/// file. Never a different answer with exit 0, never an event stored twice.
@Suite(.serialized) struct DamageSweepTests {
    static let positionsPerKind = Int(ProcessInfo.processInfo.environment["BACKORDER_DAMAGE_POSITIONS"] ?? "") ?? 50

    /// What the battery printed, command by command (exit status, output without timings).
    struct Answers: Equatable {
        var results: [String: (status: Int32, output: String, error: String)] = [:]
        static func == (a: Answers, b: Answers) -> Bool {
            a.results.keys == b.results.keys && a.results.allSatisfy { key, value in
                b.results[key].map { $0.status == value.status && $0.output == value.output } ?? false
            }
        }
    }

    static func battery(_ data: String, input: String) throws -> Answers {
        var answers = Answers()
        let commands: [(String, [String])] = [
            ("log verify", ["log", "verify", "--data", data]),
            ("dashboard", ["query", "dashboard", "--tenant", "default", "--json", "--data", data]),
            ("read", ["read", "--data", data]),
            ("groups", ["groups", "show", "g", "--data", data]),
            ("append again", ["append", input, "--data", data, "--json"]),
        ]
        for (name, arguments) in commands {
            var (status, output, error) = try runBackorder(arguments)
            // What was answered counts, not how long it took.
            output = output.replacing(/"seconds":[0-9.e-]+/, with: "").replacing(#/ in [0-9.]+ s/#, with: "")
            answers.results[name] = (status, output, error)
        }
        return answers
    }

    @Test func everyFlippedByteIsReportedRepairedOrHarmless() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let input = dir + "/input.ndjson"
        let lines = try generatedInput(events: 1_500, seed: 17, ["--customers", "20", "--products", "8", "--end", "2026-12-01"])
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let pristine = dir + "/pristine"
        for arguments in [["append", input, "--data", pristine, "--partitions", "2"], ["consume", "--group", "g", "--data", pristine]] {
            let (status, _, err) = try runBackorder(arguments)
            #expect(status == 0, "\(arguments): \(err)")
        }
        let expected = try Self.battery(pristine, input: input)
        for (name, result) in expected.results { #expect(result.status == 0, "\(name) on the undamaged store: \(result.error)") }

        // The files of each kind, and where their bytes are (a segment's preallocated zeros
        // after its data are left out: a flip there is a torn tail, covered by the log's tests).
        var kinds: [String: [String]] = [:]
        let enumerator = FileManager.default.enumerator(atPath: pristine)
        while let path = enumerator?.nextObject() as? String {
            let name = (path as NSString).lastPathComponent
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: pristine + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  !name.hasSuffix("LOCK"), !name.hasSuffix(".lock") else { continue }
            let kind = path.hasPrefix("log/") ? (name.hasSuffix(".log") ? "segment" : name.hasSuffix(".activeindex") ? "active index"
                        : name.hasSuffix(".timeindex") ? "time index" : name == "recovery-point" ? "recovery point" : "log \(name)")
                : path.hasPrefix("index/") ? (name.hasSuffix(".sst") ? "index table" : "index \(name)")
                : path.hasPrefix("views/") ? (name.hasSuffix(".sst") ? "view table" : "view \(name)")
                : path.hasPrefix("consumers/") ? "consumer state" : "other \(name)"
            kinds[kind, default: []].append(path)
        }
        #expect(Set(kinds.keys).isSuperset(of: ["segment", "active index", "recovery point", "log MANIFEST", "index table", "index MANIFEST",
                                               "view table", "view MANIFEST", "view CURRENT", "consumer state"]), "\(kinds.keys.sorted())")
        var random = SplitMix64(seed: 17)
        var summary: [String: (reported: Int, same: Int)] = [:]
        for kind in kinds.keys.sorted() {
            let files = kinds[kind]!
            let sizes = try files.map { path -> Int in
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pristine + "/" + path)))
                return kind == "segment" ? (bytes.lastIndex { $0 != 0 }.map { $0 + 1 } ?? 0) : bytes.count
            }
            for _ in 0..<Self.positionsPerKind {
                let f = Int(random.next() % UInt64(files.count))
                guard sizes[f] > 0 else { continue }
                let position = Int(random.next() % UInt64(sizes[f]))
                let copy = dir + "/copy"
                try? FileManager.default.removeItem(atPath: copy)
                try FileManager.default.copyItem(atPath: pristine, toPath: copy)
                let path = copy + "/" + files[f]
                var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                bytes[position] ^= UInt8(1 << (random.next() % 8))
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                let answers = try Self.battery(copy, input: input)
                let place = "\(kind) \(files[f]) byte \(position)"
                let fileName = (files[f] as NSString).lastPathComponent
                for (name, result) in answers.results {
                    let original = expected.results[name]!
                    if result.status == 0 && result.output == original.output {
                        summary[kind, default: (0, 0)].same += 1
                    } else if result.status == 0 {
                        Issue.record("\(place): `\(name)` answered differently with exit 0: \(result.output.prefix(300)) — expected \(original.output.prefix(300))")
                    } else {
                        #expect(result.error.contains(fileName) || result.error.contains(files[f].components(separatedBy: "/").dropLast().joined(separator: "/")),
                                "\(place): `\(name)` failed without naming the file: \(result.error.prefix(400))")
                        summary[kind, default: (0, 0)].reported += 1
                    }
                }
                // However it answered, the resent input stored nothing twice.
                let (_, read, _) = try runBackorder(["read", "--data", copy])
                let ids = read.split(separator: "\n").compactMap { $0.firstMatch(of: /"id":"([^"]+)"/).map { String($0.1) } }
                #expect(Set(ids).count == ids.count, "\(place): an event stored twice")
            }
        }
        print("damage sweep (\(Self.positionsPerKind) flips per kind, 5 commands each): " + summary.sorted { $0.key < $1.key }
            .map { "\($0.key): \($0.value.reported) reported, \($0.value.same) same answers" }.joined(separator: "; "))
    }
}
