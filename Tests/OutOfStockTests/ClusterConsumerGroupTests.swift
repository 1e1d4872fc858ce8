import Consumers
import EventStore
import Foundation
import Testing
@testable import JetStreamStore

/// Consumer groups on the JetStream back end (docs/CONSUMERS.md, "On a cluster"): leases
/// that lapse when a member stops, a takeover from the last saved checkpoint, and the old
/// holder fenced off — against a real single-node nats-server.
@Suite(.serialized) struct ClusterConsumerGroupTests {
    /// Long enough that a loaded machine does not miss a renewal (one every 750 ms).
    static let lease = 3_000

    @Test func aStoppedMembersLaneIsTakenOverFromItsCheckpointAndTheOldHolderIsFencedOff() async throws {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let cluster = try NatsTestCluster(nodes: 1)
        defer { cluster.stop() }
        let store = try await ClusterStoreTests.open(cluster, group: "cg")
        _ = try await store.submitEvents((0..<250).map { ClusterStoreTests.event("record/R-\($0 % 7)", $0) }).acknowledged()
        let ends = try store.source.endOffsets()
        #expect(ends == [250])

        var options = MemberOptions()
        options.maxInFlight = 100
        // Two "processes": each has its own view of the group, as on two machines.
        let groupA = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        let groupB = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        let a = try GroupMember(group: groupA, source: store.source, options: options)
        let first = try #require(try a.next(ends: ends))
        #expect(first.range == 0..<100 && first.events.map(\.position.offset) == Array(0..<100))
        try a.acknowledge(first)
        let unacknowledged = try #require(try a.next(ends: ends))
        #expect(unacknowledged.range == 100..<200)

        // B joins while A renews its lease: A keeps the lane (no second holder).
        let b = try GroupMember(group: groupB, source: store.source, options: options)
        #expect(try b.next(ends: ends) == nil && b.lanes.isEmpty)
        #expect(groupB.liveMembers(own: b.memberID) == 2)
        #expect(try groupB.isHeld(lane: 0))

        // A stops renewing (a process that hangs or dies without letting go): B takes the
        // lane once it has seen A's lease unchanged for a whole lease, from A's last
        // checkpoint — the unacknowledged batch is delivered again, nothing is lost.
        groupA.halt()
        let deadline = ContinuousClock.now + .seconds(30)
        var takenOver: Delivery?
        while takenOver == nil && ContinuousClock.now < deadline {
            takenOver = try b.next(ends: ends)
            if takenOver == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let again = try #require(takenOver, "B did not take the lane within 30 s")
        #expect(again.range == 100..<200 && again.attempt == 1)

        // A wakes up and acknowledges its old batch: refused, the checkpoint is B's.
        #expect(throws: ConsumerError.self) { try a.acknowledge(unacknowledged) }
        try b.acknowledge(again)
        let last = try #require(try b.next(ends: ends))
        #expect(last.range == 200..<250)
        try b.acknowledge(last)
        #expect(try b.next(ends: ends) == nil)
        #expect(try groupB.state(lane: 0).checkpoint == 250)

        // The tools: nothing moves while a member holds the lane; after it leaves, a reset.
        let tools = try await store.consumerGroup(named: "billing.v2", leaseMilliseconds: Self.lease)
        #expect(throws: ConsumerError.self) { try tools.reset(to: [0]) }
        b.close()
        #expect(try !tools.isHeld(lane: 0))
        #expect(try tools.status(ends: ends).map(\.lag) == [0])
        try tools.reset(to: [40])
        #expect(try tools.state(lane: 0).checkpoint == 40)
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
        let ends = try store.source.endOffsets()
        var options = MemberOptions()
        options.maxDeliver = 2
        let group = try await store.consumerGroup(named: "mail", leaseMilliseconds: Self.lease)
        let member = try GroupMember(group: group, source: store.source, options: options)
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
        #expect(try tools.state(lane: 0).parked.map(\.offset) == [3])
        #expect(try tools.replayParked() == 1)
        let again = try GroupMember(group: tools, source: store.source, options: options)
        let replay = try #require(try again.next(ends: ends))
        #expect(replay.isReplay && replay.events.map(\.position.offset) == [3])
        try again.acknowledge(replay)
        #expect(try again.next(ends: ends) == nil)
        again.close()
    }
}
