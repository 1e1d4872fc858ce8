import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock

/// Real crashes: `backorder append` killed with SIGKILL at random moments, many rounds,
/// against the real file system.
///
/// Each round gives a run the next 20 lines of a generated input, together with every
/// earlier line not yet acknowledged (killed runs may have stored some, which come back as
/// duplicates); the kill lands anywhere in start-up, validation, appending or closing, at a
/// random moment up to 1.3 times the last completed run's duration. A run that finished
/// before its kill acknowledged its whole input (exit 0): from then on every event of it
/// must be stored. Durability alternates between fsync, interval and none (all survive kill -9).
/// Every 20 rounds and at the end of an epoch the store is opened (recovery) and checked:
/// every acknowledged event present, no event stored twice, nothing stored that is not in
/// the input, every stream dense from version 1. An epoch ends by running the input to
/// completion: nothing rejected.
///
/// Rounds: BACKORDER_APPEND_KILL_ROUNDS (default 200; `make soak` runs 10,000).
@Suite(.serialized) struct AppendKillTests {
    static let linesPerRound = 20
    static let roundsPerEpoch = 100

    @Test func killNineOfAppendNeverLosesAnAcknowledgedEvent() async throws {
        let rounds = Int(ProcessInfo.processInfo.environment["BACKORDER_APPEND_KILL_ROUNDS"] ?? "") ?? 200
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (status, generated, _) = try runBackorder(["generate", "--events", String(Self.linesPerRound * Self.roundsPerEpoch),
                                                        "--seed", "33", "--customers", "30", "--products", "12"])
        #expect(status == 0)
        let lines = generated.split(separator: "\n").map(String.init)
        let ids = try lines.map { line -> EventID in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return try #require(EventID(object["id"] as? String ?? ""))
        }
        var random = StateMachinePropertyTests.Random(seed: 0xA99E)
        var killed = 0, completed = 0, checks = 0, eventsChecked = 0
        var estimateMilliseconds = 300.0
        var epoch = 0, roundInEpoch = 0
        // Lines below `acknowledged` were acknowledged by a run that exited 0; lines below
        // `sent` were given to some run (stored or not).
        var acknowledged = 0, sent = 0
        for round in 0..<rounds {
            let store = "\(dir)/store-\(epoch)"
            sent = min(lines.count, sent + Self.linesPerRound)
            let input = "\(dir)/input.ndjson"
            try (lines[acknowledged..<sent].joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
            let durability = ["fsync", "interval:20", "none"][round % 3]
            let process = try startBackorder(["append", input, "--data", store, "--batch-size", "8", "--durability", durability, "--partitions", "2"],
                                             output: "\(dir)/round")
            let started = ContinuousClock.now
            let delay = Int.random(in: 5...max(10, Int(estimateMilliseconds * 1.3)), using: &random)
            try await Task.sleep(for: .milliseconds(delay))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .exit {
                let err = (try? String(contentsOfFile: "\(dir)/round.stderr", encoding: .utf8)) ?? ""
                #expect(process.terminationStatus == 0, "round \(round): append exited \(process.terminationStatus): \(err.prefix(300))")
                completed += 1
                acknowledged = sent
                let elapsed = ContinuousClock.now - started
                estimateMilliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            } else {
                killed += 1
            }
            roundInEpoch += 1
            let endOfEpoch = roundInEpoch == Self.roundsPerEpoch || round == rounds - 1
            if endOfEpoch {
                // Run to completion: nothing rejected, and from now on all of it is acknowledged.
                try (lines[acknowledged..<sent].joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
                let (status, out, err) = try runBackorder(["append", input, "--data", store, "--json"])
                #expect(status == 0 && out.contains("\"rejected\":0"), "round \(round): \(err.prefix(300))")
                acknowledged = sent
                // The views were maintained by runs killed at any moment: they answer as a
                // rebuild from the log does.
                let maintained = try Self.viewAnswers(store: store)
                let (rebuilt, _, rebuildErr) = try runBackorder(["replay", "--all", "--data", store])
                #expect(rebuilt == 0, "round \(round): replay: \(rebuildErr.prefix(300))")
                #expect(try Self.viewAnswers(store: store) == maintained, "round \(round): views kept through kills differ from a rebuild")
            }
            if endOfEpoch || roundInEpoch % 20 == 0 {
                eventsChecked += try await Self.check(store: store, ids: ids, inputLines: sent, acknowledgedLines: acknowledged,
                                                      exactly: endOfEpoch, round: round)
                checks += 1
            }
            if endOfEpoch {
                epoch += 1
                roundInEpoch = 0
                acknowledged = 0
                sent = 0
            }
        }
        #expect(killed > rounds / 4, "most rounds must end in a kill (\(killed) of \(rounds))")
        print("append kill test: \(rounds) rounds, \(killed) killed mid-run, \(completed) completed before the kill, \(checks) store checks, \(eventsChecked) stored events checked, 0 lost")
    }

    /// The dashboard and every page of the records list, as JSON, from the store's views.
    static func viewAnswers(store: String) throws -> [String] {
        var answers: [String] = []
        let (status, dashboard, err) = try runBackorder(["query", "dashboard", "--data", store, "--json", "--now", "2027-01-01"])
        #expect(status == 0, "dashboard: \(err.prefix(300))")
        answers.append(dashboard)
        var cursor: String?
        repeat {
            let (status, page, err) = try runBackorder(["query", "records", "--data", store, "--json", "--limit", "1000"] + (cursor.map { ["--cursor", $0] } ?? []))
            #expect(status == 0, "records: \(err.prefix(300))")
            answers.append(page)
            let object = try JSONSerialization.jsonObject(with: Data(page.utf8)) as? [String: Any]
            cursor = object?["nextCursor"] as? String
        } while cursor != nil && answers.count < 100
        return answers
    }

    /// Opens the store (recovering it) and checks it against the input; returns the number
    /// of stored events checked.
    static func check(store: String, ids: [EventID], inputLines: Int, acknowledgedLines: Int, exactly: Bool, round: Int) async throws -> Int {
        guard FileManager.default.fileExists(atPath: store + "/log") else {
            #expect(acknowledgedLines == 0, "round \(round): the store is missing")
            return 0
        }
        let opened = try await EventStore.open(at: store)
        var stored = Set<EventID>(), streams = Set<String>()
        for event in try allStoredEvents(opened) {
            #expect(stored.insert(event.id).inserted, "round \(round): event \(event.id) stored twice")
            streams.insert(event.tenant + "\u{0}" + event.stream)
        }
        let known = Set(ids.prefix(inputLines))
        #expect(stored.isSubset(of: known), "round \(round): \(stored.subtracting(known).count) stored events are not in the input")
        let missing = ids.prefix(acknowledgedLines).filter { !stored.contains($0) }
        #expect(missing.isEmpty, "round \(round): \(missing.count) acknowledged events lost")
        if exactly { #expect(stored.count == inputLines, "round \(round): \(stored.count) stored, \(inputLines) in the input") }
        for key in streams {
            let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
            let events = try opened.readStream(tenant: parts[0], stream: parts[1])
            #expect(events.map(\.streamVersion) == Array(1...Int64(events.count)), "round \(round): stream \(parts[1]) is not dense")
        }
        try await opened.close()
        return stored.count
    }
}
