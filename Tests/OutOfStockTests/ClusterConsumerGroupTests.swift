import Consumers
import Spawn
import EventStore
import Foundation
import Testing
@testable import JetStreamStore

/// Consumer groups on the JetStream back end (docs/CONSUMERS.md, "On a cluster"): leases
/// that lapse when a member stops, a takeover from the last saved checkpoint, and the old
/// holder fenced off — against a real single-node nats-server.
@Suite(.serialized) struct ClusterConsumerGroupTests {
    /// The default: long enough that a loaded machine does not miss a renewal (one every 1.25 s).
    static let lease = ClusterConsumerGroup.defaultLeaseMilliseconds

    /// Calls `body` every 50 ms until it returns true or 30 s pass.
    /// Polls `body` until it holds, for at most 90 s: alone the tests take seconds, but beside
    /// the full suite on 2 cores a takeover once did not finish within 30 s.
    static func eventually(_ body: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            if try body() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func membersShareThePartitionsAndAStoppedMembersLanesAreTakenOverFromTheirCheckpoints() async throws {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let cluster = try NatsTestCluster(nodes: 1)
        defer { cluster.stop() }
        let store = try await ClusterStoreTests.open(cluster, group: "cg")
        _ = try await store.submitEvents((0..<400).map { ClusterStoreTests.event("record/R-\($0 % 40)", $0) }).acknowledged()
        let lanes = store.lanes
        let ends = try lanes.endOffsets()
        #expect(lanes.partitionCount == 8 && ends.max() == 400 && ends.allSatisfy { $0 > 0 }, "\(ends)")

        var options = MemberOptions()
        options.maxInFlight = 20
        // Two "processes": each has its own view of the group, as on two machines.
        let groupA = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        let groupB = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        let a = try GroupMember(group: groupA, source: lanes, options: options)
        let first = try #require(try a.next(ends: ends))
        #expect(a.lanes == Array(0..<8), "alone, a member takes every lane")
        #expect(first.events.allSatisfy { lanes.lane(tenant: $0.tenant, stream: $0.stream) == first.lane })
        #expect(first.events.map(\.position.offset) == first.events.map(\.position.offset).sorted())
        try a.acknowledge(first)
        let unacknowledged = try #require(try a.next(ends: ends))

        // B joins; A keeps the lane with a batch in flight and gives B its share.
        let b = try GroupMember(group: groupB, source: lanes, options: options)
        #expect(groupB.liveMembers(own: b.memberID) == 2)
        let shared = try await Self.eventually {
            try a.rebalance()  // (`next` would return its batch in flight without a look)
            _ = try b.next(ends: Array(repeating: 0, count: 8))  // looks, delivers nothing
            return a.lanes.count == 4 && b.lanes.count == 4
        }
        #expect(shared, "A holds \(a.lanes), B \(b.lanes)")
        #expect(Set(a.lanes).isDisjoint(with: b.lanes) && a.lanes.contains(unacknowledged.lane))

        // A stops renewing (a process that hangs or dies without letting go): B takes its
        // lanes once it has seen them unchanged for a whole lease, from A's checkpoints.
        groupA.halt()
        var delivered: [Int64] = []
        let drained = try await Self.eventually {
            while let delivery = try b.next(ends: ends) {
                delivered += delivery.events.map(\.position.offset)
                try b.acknowledge(delivery)
            }
            return b.lanes.count == 8
        }
        #expect(drained, "B holds \(b.lanes)")
        while let delivery = try b.next(ends: ends) {
            delivered += delivery.events.map(\.position.offset)
            try b.acknowledge(delivery)
        }
        // Every event once, except A's batch in flight: delivered again; A's acknowledged
        // batch is not.
        let acknowledgedByA = Set(first.events.map(\.position.offset))
        #expect(Set(delivered).isDisjoint(with: acknowledgedByA))
        #expect(Set(delivered).isSuperset(of: unacknowledged.events.map(\.position.offset)))
        #expect(delivered.count == 400 - first.events.count && Set(delivered).union(acknowledgedByA) == Set(0..<400))
        #expect(try (0..<8).map { try groupB.state(lane: $0).checkpoint } == ends)

        // A wakes up and acknowledges its old batch: refused, the checkpoint is B's.
        #expect(throws: ConsumerError.self) { try a.acknowledge(unacknowledged) }

        // The tools: nothing moves while a member holds the lanes; after it leaves, a reset.
        let tools = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        #expect(throws: ConsumerError.self) { try tools.reset(to: Array(repeating: 0, count: 8)) }
        b.close()
        #expect(try !tools.isHeld(lane: 0))
        #expect(try tools.status(ends: ends).map(\.lag) == Array(repeating: 0, count: 8))
        try tools.reset(to: Array(repeating: 40, count: 8))
        #expect(try tools.state(lane: 3).checkpoint == 40)
        #expect(try await store.consumerGroupNames() == ["billing.v2"])
        try tools.delete()
        #expect(try await store.consumerGroupNames() == [])
        a.close()
    }

    @Test func aFailingEventIsParkedOnTheClusterAndReplayedOnRequest() async throws {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let cluster = try NatsTestCluster(nodes: 1)
        defer { cluster.stop() }
        let store = try await ClusterStoreTests.open(cluster, group: "park")
        _ = try await store.submitEvents((0..<5).map { ClusterStoreTests.event("record/R-1", $0) }).acknowledged()
        let ends = try store.lanes.endOffsets()
        var options = MemberOptions()
        options.maxDeliver = 2
        let group = try await store.consumerGroup(named: "mail", leaseMilliseconds: Self.lease)
        let member = try GroupMember(group: group, source: store.lanes, options: options)
        // Offset 3 always fails: the batch fails twice, then goes one event at a time, and
        // only offset 3 is parked.
        var delivered: [Int64] = [], parked: [Int64] = []
        while let delivery = try member.next(ends: ends) {
            if delivery.range.contains(3) {
                if case let .parked(offsets) = try member.failed(delivery, reason: "poison") { parked += offsets }
            } else {
                delivered += delivery.events.map(\.position.offset)
                try member.acknowledge(delivery)
            }
        }
        #expect(parked == [3] && delivered == [0, 1, 2, 4])
        member.close()
        let tools = try await store.consumerGroup(named: "mail", leaseMilliseconds: Self.lease)
        let lane = store.lanes.lane(tenant: "acme", stream: "record/R-1")
        #expect(try tools.state(lane: lane).parked.map(\.offset) == [3])
        #expect(try tools.replayParked() == 1)
        let again = try GroupMember(group: tools, source: store.lanes, options: options)
        let replay = try #require(try again.next(ends: ends))
        #expect(replay.isReplay && replay.events.map(\.position.offset) == [3])
        try again.acknowledge(replay)
        #expect(try again.next(ends: ends) == nil)
        again.close()
    }

    /// Two `consume --follow --cluster` processes of one group share the partitions; when
    /// one is killed with SIGKILL, the other takes its lanes once their leases lapse (5 s)
    /// and delivers everything, the dead member's batch in flight at most twice.
    @Test func twoMemberProcessesShareTheLanesAndOneTakesOverWhenTheOtherIsKilled() throws {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let cluster = try NatsTestCluster(nodes: 1)
        defer { cluster.stop() }
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let flags = ["--data", dir + "/views", "--cluster", cluster.urls, "--replicas", "1"]
        let lines = try generatedInput(events: 1_200, seed: 15, ["--customers", "30", "--products", "8", "--end", "2026-12-01"])
        func append(_ range: Range<Int>) throws {
            let (status, _, err) = try runBackorder(["append", "-"] + flags, stdin: lines[range].joined(separator: "\n") + "\n")
            #expect(status == 0, "\(err)")
        }
        try append(0..<600)
        func member(_ name: String) throws -> SpawnedProcess {
            try startBackorder(["consume", "--group", "g", "--follow", "--poll-milliseconds", "20", "--max-in-flight", "20",
                                "--exec", "cat >> \(dir)/\(name).ndjson"] + flags, output: dir + "/" + name)
        }
        func ids(_ name: String) -> [String] {
            ((try? String(contentsOfFile: dir + "/" + name + ".ndjson", encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { $0.firstMatch(of: /"id":"([^"]+)"/).map { String($0.1) } }
        }
        func waitUntil(_ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(60)
            while !condition() && Date() < deadline { usleep(10_000) }
            return condition()
        }
        let a = try member("a")
        defer { if a.isRunning { a.terminate() } }
        #expect(waitUntil { ids("a").count > 0 }, "the first member delivers")
        let b = try member("b")
        defer { if b.isRunning { b.terminate() } }
        // The first member gives lanes up at its next look (every quarter lease); events go
        // in 20 at a time until the second has delivered some (up to 1,100, or 60 s).
        var sent = 600
        let deadline = Date().addingTimeInterval(60)
        while ids("b").isEmpty && Date() < deadline {
            if sent < 1_100 {
                try append(sent..<(sent + 20))
                sent += 20
            }
            usleep(300_000)
        }
        #expect(waitUntil { Set(ids("a") + ids("b")).count >= sent && !ids("b").isEmpty }, "both members deliver: \(ids("a").count) + \(ids("b").count)")
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        try append(sent..<1_200)
        #expect(waitUntil { Set(ids("a") + ids("b")).count >= 1_200 }, "the survivor delivers the dead member's lanes: \(Set(ids("a") + ids("b")).count) of 1200")
        let all = ids("a") + ids("b")
        #expect(Set(all).count == 1_200 && all.count - 1_200 <= 20, "every event, at most one batch twice: \(all.count) deliveries")
        b.terminate()
        b.waitUntilExit()
    }
}
