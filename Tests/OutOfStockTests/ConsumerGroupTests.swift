import Consumers
import Foundation
import Testing
import TestSupport
@testable import EventStore

/// Consumer groups (docs/CONSUMERS.md): checkpoints that never pass an unacknowledged
/// event, members sharing lanes and taking a dead member's over, parking, and the command
/// line under kill -9.
@Suite(.serialized) struct ConsumerGroupTests {
    /// A store of `count` events over `partitions` partitions, closed; its directory.
    private static func store(_ dir: String, events count: Int, partitions: Int = 4) async throws -> String {
        var options = StoreOptions()
        options.log.partitionCount = partitions
        let store = try await EventStore.open(at: dir, options: options)
        _ = try await store.append((0..<count).map { n in
            NewEvent(id: EventID(high: 7, low: UInt64(n)), type: "Test", tenant: n % 3 == 0 ? "t1" : "t2", stream: "S-\(n % 13)",
                     businessTime: Int64(n), actor: "u", data: Array("event \(n)".utf8))
        })
        try await store.close()
        return dir
    }

    @Test func checkpointsMoveOnlyPastAcknowledgedOrParkedEvents() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One lane, so that the batches follow one another (with more, a member takes them
        // from its lanes in turn).
        _ = try await Self.store(dir, events: 400, partitions: 1)
        let source = try await EventReader.open(at: dir)
        let ends = try source.endOffsets()
        let group = try ConsumerGroup(root: dir + "/consumers", name: "billing", laneCount: 1)
        var options = MemberOptions()
        options.maxInFlight = 10
        options.maxDeliver = 2
        let member = try GroupMember(group: group, source: source, options: options)
        try member.rebalance()
        #expect(member.lanes == [0])

        // A batch delivered but not acknowledged: the checkpoint stays, and a new member
        // after this one's death gets the same batch again.
        let first = try #require(try member.next(ends: ends))
        #expect(first.events.count == 10 && first.range.lowerBound == 0)
        #expect(try group.state(lane: first.lane).checkpoint == 0)
        #expect(try member.failed(first, reason: "timeout") == .retry(afterMilliseconds: 100))
        let again = try #require(try member.next(ends: ends))
        #expect(again.range == first.range && again.attempt == 2)
        // The second failure of a 10-event batch: delivered one event at a time instead.
        #expect(try member.failed(again, reason: "boom") == .retry(afterMilliseconds: 0))
        let single = try #require(try member.next(ends: ends))
        #expect(single.events.count == 1 && single.range == first.range.lowerBound..<(first.range.lowerBound + 1))
        try member.acknowledge(single)
        #expect(try group.state(lane: single.lane).checkpoint == single.range.upperBound)
        // A single event failing max-deliver times is parked, and the lane goes on past it.
        let poison = try #require(try member.next(ends: ends))
        _ = try member.failed(poison, reason: "bad data")
        let parked = try member.failed(try #require(try member.next(ends: ends)), reason: "bad data")
        #expect(parked == .parked([poison.range.lowerBound]))
        let state = try group.state(lane: poison.lane)
        #expect(state.checkpoint == poison.range.upperBound && state.parked.map(\.offset) == [poison.range.lowerBound])
        #expect(state.parked.first?.reason == "bad data" && state.parked.first?.deliveries == 2)
        member.close()

        // Everything else, by a new member: each event once, parked one excepted.
        let next = try GroupMember(group: group, source: source, options: options)
        try next.rebalance()
        var seen = Set<Position>()
        while let delivery = try next.next(ends: ends) {
            for event in delivery.events { #expect(seen.insert(event.position).inserted, "\(event.position) delivered twice") }
            try next.acknowledge(delivery)
        }
        #expect(seen.count == 400 - 2, "all but the acknowledged one and the parked one")
        // Parked events sent back come first, then nothing.
        next.close()
        #expect(try group.replayParked() == 1)
        let replaying = try GroupMember(group: group, source: source, options: options)
        try replaying.rebalance()
        let replayed = try #require(try replaying.next(ends: ends))
        #expect(replayed.isReplay && replayed.range.lowerBound == poison.range.lowerBound)
        try replaying.acknowledge(replayed)
        #expect(try replaying.next(ends: ends) == nil)
        #expect(try group.state(lane: poison.lane).parked.isEmpty)
    }

    @Test func membersShareTheLanesAndTakeOverADeadMembersLanes() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await Self.store(dir, events: 100)
        let source = try await EventReader.open(at: dir)
        let group = try ConsumerGroup(root: dir + "/consumers", name: "search", laneCount: 4)
        let a = try GroupMember(group: group, source: source, options: MemberOptions())
        try a.rebalance()
        #expect(a.lanes == [0, 1, 2, 3], "alone, a member takes every lane")
        let b = try GroupMember(group: group, source: source, options: MemberOptions())
        try b.rebalance()
        #expect(b.lanes.isEmpty, "lanes held by a live member are not taken")
        try a.rebalance()
        try b.rebalance()
        #expect(a.lanes.count == 2 && b.lanes.count == 2 && Set(a.lanes + b.lanes) == [0, 1, 2, 3], "\(a.lanes) \(b.lanes)")
        a.close()  // its locks go, as when the kernel drops a killed process's
        try b.rebalance()
        #expect(b.lanes == [0, 1, 2, 3], "the dead member's lanes are taken over")
        b.close()
    }

    @Test func aDamagedCheckpointIsAnErrorNamingTheFileNeverAGuess() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = try ConsumerGroup(root: dir, name: "g", laneCount: 2)
        var state = LaneState(lane: 1, checkpoint: 1234)
        state.parked = [LaneState.Parked(offset: 7, deliveries: 5, reason: "exit status 1")]
        state.replay = [3]
        try group.save(state)
        #expect(try group.state(lane: 1) == state)
        let path = dir + "/g/lane-0001.state"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        for position in [0, 12, 20, bytes.count - 1] {
            bytes[position] ^= 0x10
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: ConsumerError.self) { _ = try group.state(lane: 1) }
            do { _ = try group.state(lane: 1) } catch { #expect("\(error)".contains(path), "\(error)") }
            bytes[position] ^= 0x10
        }
        for name in ["", "..", "a/b", String(repeating: "x", count: 65)] {
            #expect(throws: ConsumerError.self) { try ConsumerGroup.validate(name: name) }
        }
    }

    /// kill -9 of `backorder consume --exec` part way, then a run to the end: every event
    /// delivered, and delivered twice only when its batch was not acknowledged.
    @Test func killNineOfAConsumerLosesNothing() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lines = try generatedInput(events: 2_000, seed: 12, ["--customers", "20", "--products", "8", "--end", "2026-12-01"])
        let appended = try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(appended.0 == 0, "\(appended.2)")
        let out = dir + "/delivered.ndjson"
        let command = "cat >> \(out); sleep 0.01"
        func deliveredLines() -> [Substring] {
            ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        var kills = 0
        var killed: [Int32] = []
        for round in 0..<3 {
            let consumer = try startBackorder(["consume", "--data", dir + "/s", "--group", "g", "--max-in-flight", "40", "--exec", command], output: dir + "/consume")
            let target = (round + 1) * 400
            let deadline = Date().addingTimeInterval(60)
            while deliveredLines().count < target && consumer.isRunning && Date() < deadline { usleep(1_000) }
            guard consumer.isRunning else { break }
            kill(consumer.processIdentifier, SIGKILL)
            consumer.waitUntilExit()
            killed.append(consumer.processIdentifier)
            kills += 1
        }
        // A batch's file has no name (O_TMPFILE): a kill at any moment leaves none behind.
        let temporary = FileManager.default.temporaryDirectory.path
        let leftOver = ((try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [])
            .filter { name in killed.contains { name.hasPrefix("backorder-batch-\($0)-") } }
        #expect(leftOver.isEmpty, "batch files left by killed consumers: \(leftOver)")
        // Commands the killed consumers started (their shells name `out`) finish writing first.
        let commands = ProcessTable.processes(withAnArgument: { $0.contains(out) })
        #expect(Self.allEnd(commands), "commands of killed consumers still running: \(commands.filter(Self.isAlive))")
        let (status, _, err) = try runBackorder(["consume", "--data", dir + "/s", "--group", "g", "--max-in-flight", "40", "--exec", command])
        #expect(status == 0, "\(err)")
        let delivered = deliveredLines()
        let ids = delivered.compactMap { $0.firstMatch(of: /"id":"([^"]+)"/).map { String($0.1) } }
        let expected = Set(lines.compactMap { $0.firstMatch(of: /"id":"([^"]+)"/).map { String($0.1) } })
        #expect(Set(ids) == expected, "every event delivered: \(Set(ids).count) of \(expected.count)")
        #expect(ids.count - expected.count <= kills * 40, "duplicates only of batches not acknowledged: \(ids.count - expected.count) after \(kills) kills")
        let (_, show, _) = try runBackorder(["groups", "show", "g", "--data", dir + "/s"])
        #expect(!show.contains("yes") && show.split(separator: "\n").dropFirst().allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true)[3] == "0" }, "no lag left: \(show)")
        print("consumer kill test: \(kills) kills, \(ids.count) deliveries of \(expected.count) events")
    }

    /// `consume --exec` with commands that fail: a non-zero exit is retried, then parked after
    /// --max-deliver; a command killed by a signal or still running after --ack-wait is a
    /// failed delivery too (stopped, not waited for) — each reason named on standard error.
    @Test func failingCommandsAreRetriedParkedAndStopped() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lines = try generatedInput(events: 2, seed: 15, ["--customers", "2", "--products", "2", "--end", "2026-12-01"])
        #expect(try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines.joined(separator: "\n") + "\n").0 == 0)
        for (group, command, reason) in [("fails", "cat > /dev/null; exit 3", "exit status 3"),
                                         ("killed", "kill -9 $$", "killed by signal 9"),
                                         ("hangs", "sleep 30 & echo $! >> \(dir)/children; wait", "still running after --ack-wait 1 s; stopped")] {
            let began = Date()
            let (status, _, err) = try runBackorder(["consume", "--data", dir + "/s", "--group", group, "--max-in-flight", "1",
                                                     "--max-deliver", "2", "--ack-wait", "1", "--exec", command])
            #expect(status == 0, "\(err)")
            #expect(err.contains("delivery 1 of 2 failed (\(reason))"), "\(group): \(err)")
            #expect(err.contains("after 2 failed deliveries (\(reason))"), "\(group): \(err)")
            #expect(err.contains("consumed 0 events in 0 batches") && err.contains("2 parked"), "\(group): \(err)")
            if group == "hangs" {
                #expect(Date().timeIntervalSince(began) < 25, "the hung command was stopped, not waited for")
                // With what it started: nothing goes on with a batch that is delivered again.
                let children = try String(contentsOfFile: dir + "/children", encoding: .utf8).split(separator: "\n").compactMap { pid_t($0) }
                #expect(children.count == 4 && Self.allEnd(children), "\(children.count) started (2 events × 2 deliveries), left running: \(children.filter(Self.isAlive))")
            }
        }
        // Ctrl-C of a consumer while its command runs reaches the command's process group.
        try? FileManager.default.removeItem(atPath: dir + "/children")
        // (A foreground command, as Ctrl-C in a terminal reaches: sh runs `&` jobs with SIGINT ignored.)
        let consumer = try startBackorder(["consume", "--data", dir + "/s", "--group", "interrupted", "--exec", "echo $$ >> \(dir)/children; exec sleep 30"],
                                          output: dir + "/interrupted")
        let deadline = Date().addingTimeInterval(30)
        // The command's shell wrote its pid, then became `sleep` (exec): the command runs.
        func commandRuns() -> Bool {
            guard let pid = ((try? String(contentsOfFile: dir + "/children", encoding: .utf8)) ?? "").split(separator: "\n").first.flatMap({ pid_t($0) }) else { return false }
            return ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "") == "sleep\n"
        }
        while !commandRuns() && Date() < deadline { usleep(5_000) }
        #expect(commandRuns(), "the consumer's command started within 30 s")
        kill(consumer.processIdentifier, SIGINT)
        consumer.waitUntilExit()
        #expect(consumer.terminationReason == .uncaughtSignal, "the consumer ends as Ctrl-C ends it")
        let started = try String(contentsOfFile: dir + "/children", encoding: .utf8).split(separator: "\n").compactMap { pid_t($0) }
        #expect(started.count == 1 && Self.allEnd(started), "the command outlived its consumer: \(started)")
    }

    /// Whether every process ends within 20 s (a signal is delivered when the process next
    /// runs, which takes a while on a loaded machine).
    static func allEnd(_ pids: [pid_t]) -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while pids.contains(where: isAlive) && Date() < deadline { usleep(10_000) }
        return !pids.contains(where: isAlive)
    }

    /// Whether a process runs (a zombie waiting for its reaper does not).
    static func isAlive(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 && ProcessTable.state(pid) != "Z"
    }

    /// Two `consume --follow` processes of one group share the lanes; when one is killed,
    /// the other takes its lanes and delivers what is appended next.
    @Test func twoMembersShareTheLanesAndOneTakesOverWhenTheOtherIsKilled() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lines = try generatedInput(events: 1_600, seed: 14, ["--customers", "20", "--products", "8", "--end", "2026-12-01"])
        #expect(try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines.prefix(800).joined(separator: "\n") + "\n").0 == 0)
        func member(_ name: String) throws -> SpawnedProcess {
            try startBackorder(["consume", "--data", dir + "/s", "--group", "g", "--follow", "--poll-milliseconds", "10", "--max-in-flight", "20",
                                "--exec", "cat >> \(dir)/\(name).ndjson"], output: dir + "/" + name)
        }
        func count(_ name: String) -> Int {
            ((try? String(contentsOfFile: dir + "/" + name + ".ndjson", encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        func waitUntil(_ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(30)
            while !condition() && Date() < deadline { usleep(2_000) }
            return condition()
        }
        let a = try member("a")
        defer { if a.isRunning { a.terminate() } }
        #expect(waitUntil { count("a") > 0 }, "the first member delivers")
        let b = try member("b")
        defer { if b.isRunning { b.terminate() } }
        #expect(waitUntil { count("a") + count("b") >= 800 }, "\(count("a")) + \(count("b")) of 800")
        // The second member gets a share once the first lets lanes go (at its next look,
        // within 100 ms): events go in 40 at a time until the second has delivered some — on
        // a loaded machine the first may deliver a chunk or two before it lets go.
        var sent = 800
        while sent < 1_200 {
            #expect(try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines[sent..<(sent + 40)].joined(separator: "\n") + "\n").0 == 0)
            sent += 40
            #expect(waitUntil { count("a") + count("b") >= sent })
            if count("b") > 0 { break }
        }
        if sent < 1_200 {
            #expect(try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines[sent..<1_200].joined(separator: "\n") + "\n").0 == 0)
        }
        #expect(waitUntil { count("a") + count("b") >= 1_200 })
        let bBefore = count("b")
        #expect(bBefore > 0, "both members delivered")
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        #expect(try runBackorder(["append", "-", "--data", dir + "/s"], stdin: lines[1_200...].joined(separator: "\n") + "\n").0 == 0)
        #expect(waitUntil { count("a") + count("b") >= 1_600 }, "the survivor delivers the dead member's lanes: \(count("a")) + \(count("b"))")
        let ids = ["a", "b"].flatMap { name in
            ((try? String(contentsOfFile: dir + "/" + name + ".ndjson", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { $0.firstMatch(of: /"id":"([^"]+)"/).map { String($0.1) } }
        }
        #expect(Set(ids).count == 1_600, "every event delivered")
        b.terminate()
        b.waitUntilExit()
    }

    @Test func resetReplaysFromAPointAndBadArgumentsAreRefused() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = try generatedInput(events: 300, seed: 13, ["--customers", "10", "--products", "5", "--end", "2026-12-01"])
        #expect(try runBackorder(["append", "-", "--data", dir], stdin: lines.joined(separator: "\n") + "\n").0 == 0)
        let (_, all, _) = try runBackorder(["consume", "--data", dir, "--group", "g"])
        #expect(all.split(separator: "\n").count == 300)
        let (_, none, _) = try runBackorder(["consume", "--data", dir, "--group", "g"])
        #expect(none.isEmpty, "a group delivers each event once")
        let (_, read, _) = try runBackorder(["read", "--data", dir, "--limit", "120"])
        let resume = try #require(try runBackorder(["read", "--data", dir, "--limit", "120"]).2.firstMatch(of: /--from ([0-9,]+)/).map { String($0.1) })
        let (resetStatus, _, resetErr) = try runBackorder(["groups", "reset", "g", "--data", dir, "--to", resume])
        #expect(resetStatus == 0, "\(resetErr)")
        let (_, rest, _) = try runBackorder(["consume", "--data", dir, "--group", "g"])
        #expect(rest.split(separator: "\n").count == 300 - read.split(separator: "\n").count)
        #expect(try runBackorder(["groups", "reset", "g", "--data", dir, "--to", "earliest"]).0 == 0)
        #expect(try runBackorder(["consume", "--data", dir, "--group", "g", "--type", "OutOfStockReported"]).1.split(separator: "\n").count
                == lines.filter { $0.contains("\"type\":\"OutOfStockReported\"") }.count)
        let (_, list, _) = try runBackorder(["groups", "list", "--data", dir])
        #expect(list.contains("g ") && list.contains(" 0 "), "\(list)")
        for (arguments, words) in [(["consume", "--group", "a/b"], "use 1–64 characters"), (["consume", "--group", "g", "--max-deliver", "0"], "--max-deliver must be"),
                                   (["groups", "show", "nope"], "no consumer group nope"), (["groups", "reset", "g", "--to", "1,2"], "offsets, one per partition")] {
            let (status, _, err) = try runBackorder(arguments + ["--data", dir])
            #expect(status != 0 && err.contains(words), "\(arguments): \(err)")
        }
        #expect(try runBackorder(["groups", "delete", "g", "--data", dir]).0 == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/consumers/g"))
    }
}
