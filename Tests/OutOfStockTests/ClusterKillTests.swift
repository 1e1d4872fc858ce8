import Foundation
import Synchronization
import Testing
import TestSupport
@testable import EventStore
@testable import JetStreamStore
import OutOfStock
import Projections
import RecordsView
import KVStore

/// A node of a 3-node JetStream cluster killed with SIGKILL under load (issue 10).
///
/// Four producers, each with its own connection, ingest a tenant's generated events in
/// chunks of 100 lines through the same `Ingestor` as `backorder append`, retrying a chunk
/// (on a new connection) until it is acknowledged. When about a third of the events are
/// acknowledged, the stream's leader is killed with SIGKILL, and started again two
/// seconds later. A viewer catches a records view up with the stream all along. Then:
/// every acknowledged event is stored exactly once, nothing else is stored, every stream is
/// dense from version 1, all three replicas hold the same number of messages, and the view
/// built live equals a rebuild from the stream, byte for byte.
///
/// Events: BACKORDER_CLUSTER_KILL_EVENTS (default 4,000); kills: BACKORDER_CLUSTER_KILLS
/// (default 1; `make soak-cluster` runs more of both).
@Suite(.serialized) struct ClusterKillTests {
    /// Waits until a restarted node's replica of the stream is current again. nats-server
    /// 2.9.10 sometimes fails at that (twice in ~50 kills the replica stayed thousands of
    /// operations behind; docs/CLUSTER.md, finding 8). Such a node is killed and started
    /// again, up to 3 times; returns how many extra restarts it took. (The store copes
    /// with a lagging replica itself; this keeps the test's replica comparison meaningful.)
    static func rejoin(node: Int, of store: JetStreamStore, in cluster: NatsTestCluster, phase: (String) -> Void) async throws -> Int {
        for extra in 0...3 {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let status = try await store.status()
                let name = "n\(node)"
                if status.leader == name || status.peers.contains(where: { $0.name == name && $0.current && !$0.offline }) { return extra }
                try await Task.sleep(for: .milliseconds(250))
            }
            guard extra < 3 else { break }
            phase("n\(node) did not rejoin within 20 s: restarting it again")
            try cluster.kill(node: node)
            try cluster.start(node: node)
        }
        Issue.record("n\(node) never rejoined the stream's replicas")
        return 3
    }

    /// What the producers, the viewer and the killer share.
    final class Shared: Sendable {
        let acknowledged = Mutex<Set<String>>([])
        let done = Atomic<Int>(0)
    }

    static let producers = 4
    static let linesPerChunk = 100

    @Test func killingNodesUnderLoadLosesAndDuplicatesNothing() async throws {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let environment = ProcessInfo.processInfo.environment
        let total = Int(environment["BACKORDER_CLUSTER_KILL_EVENTS"] ?? "") ?? 4_000
        let kills = Int(environment["BACKORDER_CLUSTER_KILLS"] ?? "") ?? 1
        let cluster = try NatsTestCluster(nodes: 3)
        defer { cluster.stop() }
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        let (status, generated, _) = try runBackorder(["generate", "--events", String(total), "--tenants", String(Self.producers),
                                                        "--seed", "10", "--customers", "40", "--products", "20"])
        #expect(status == 0)
        var linesOf: [String: [String]] = [:], idOf: [String: String] = [:]
        for line in generated.split(separator: "\n").map(String.init) {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let tenant = try #require(object["tenant"] as? String)
            linesOf[tenant, default: []].append(line)
            idOf[line] = try #require(object["id"] as? String)
        }
        #expect(linesOf.count == Self.producers)

        var options = ClusterOptions(urls: cluster.urls)
        options.group = "kill"
        options.replicas = 3
        options.retrySeconds = 30
        let creator = try await JetStreamStore.open(options)
        let producerOptions = options
        let source = creator.source

        let shared = Shared()
        let ids = idOf
        let started = ContinuousClock.now
        func phase(_ name: String) { print("cluster kill test: \(name) at \(ContinuousClock.now - started)") }
        let viewRoot = cluster.directory + "/views-live"
        let viewer = Task(executorPreference: QueueExecutor("viewer")) { () throws -> [[UInt8]] in
            // The view kept up while nodes die, committed after every catch-up.
            let live = try MaintainedView<RecordsProjector>.openWriter(root: viewRoot, source: source, options: RecordsViewAccess.options())
            defer { try? live.close() }
            while shared.done.load(ordering: .acquiring) < Self.producers {
                try live.catchUp()
                try await Task.sleep(for: .milliseconds(200))
            }
            try live.catchUp()
            return try viewRows(live.snapshot())
        }
        let producers = linesOf.sorted { $0.key < $1.key }.enumerated().map { number, entry in
            Task(executorPreference: QueueExecutor("producer \(number)")) { () throws -> Int in
                defer { shared.done.add(1, ordering: .releasing) }
                var retries = 0
                var store: JetStreamStore?
                let chunks = stride(from: 0, to: entry.value.count, by: Self.linesPerChunk).map { Array(entry.value[$0..<min($0 + Self.linesPerChunk, entry.value.count)]) }
                for (k, chunk) in chunks.enumerated() {
                    let path = dir + "/p\(number)-\(k).ndjson"
                    try (chunk.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
                    var attempt = 0
                    while true {
                        attempt += 1
                        do {
                            // One store for the producer's run; a new one (a new connection,
                            // the ids read again) after a failure, which stops a store's appends.
                            let current: JetStreamStore
                            if let store { current = store } else { current = try await JetStreamStore.open(producerOptions) }
                            store = current
                            let fd = open(path, O_RDONLY)
                            defer { close(fd) }
                            var reader = LineReader(fd: fd, name: path)
                            let report = try await Ingestor(store: current, options: IngestOptions()).ingest(&reader)
                            guard report.rejected == 0 && report.appended + report.duplicates == chunk.count else {
                                Issue.record("chunk \(k) of producer \(number): \(report.rejected) lines rejected: \(report.errors.prefix(3))")
                                return retries
                            }
                            shared.acknowledged.withLock { set in for line in chunk { set.insert(ids[line] ?? "") } }
                            break
                        } catch {
                            store = nil
                            retries += 1
                            guard attempt < 20 else { throw error }
                            try await Task.sleep(for: .milliseconds(500))
                        }
                    }
                }
                return retries
            }
        }

        var killed: [Int] = [], restarts = 0
        // A watchdog: a cluster that never recovers fails the test instead of hanging it
        // (stopping the nodes makes every blocked call fail).
        let watchdog = Task {
            try await Task.sleep(for: .seconds(120 + total / 200 + 60 * kills))
            Issue.record("the cluster kill test ran out of time: stopping the cluster")
            cluster.stop()
        }
        defer { watchdog.cancel() }
        for round in 0..<kills {
            // Kill when (round + 1) / (kills + 2) of the events are acknowledged.
            let target = total * (round + 1) / (kills + 2)
            while shared.acknowledged.withLock({ $0.count }) < target && shared.done.load(ordering: .acquiring) < Self.producers {
                try await Task.sleep(for: .milliseconds(20))
            }
            let leader = try await creator.status().leader
            let node = Int(leader?.dropFirst() ?? "") ?? 1  // nodes are named n1, n2, n3
            try cluster.kill(node: node)
            phase("killed n\(node)")
            killed.append(node)
            try await Task.sleep(for: .seconds(2))
            try cluster.start(node: node)
            restarts += try await Self.rejoin(node: node, of: creator, in: cluster, phase: phase)
        }
        var retries = 0
        for producer in producers { retries += try await producer.value }
        phase("producers done")
        let live = try await viewer.value
        phase("viewer done")

        // Replicas converge: all current, the same message count on every node.
        let deadline = ContinuousClock.now + .seconds(60)
        var counts: [Int?] = []
        while ContinuousClock.now < deadline {
            let status = try await creator.status()
            counts = try (1...3).map { try cluster.messages(node: $0, stream: creator.streamName) }
            if status.peers.allSatisfy({ $0.current && !$0.offline && $0.lag == 0 }) && Set(counts).count == 1 && counts[0] == Int(status.messages) { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        phase("replicas compared")
        let stored = try source.endOffsets()[0]
        #expect(counts == [Int(stored), Int(stored), Int(stored)], "messages per node after the restarts")

        // Exactly once: every acknowledged id stored, none twice, nothing not in the input.
        var cursor = try source.events(partition: 0, from: 0)
        var all: [StoredEvent] = []
        while Int64(all.count) < stored, let batch = try cursor.next() { all += batch }
        let storedIDs = all.map { $0.id.description }
        #expect(all.count == Int(stored))
        #expect(Set(storedIDs).count == storedIDs.count, "an event stored twice")
        let acked = shared.acknowledged.withLock { $0 }
        #expect(acked.count == total, "every chunk acknowledged in the end")
        let missing = acked.subtracting(storedIDs)
        #expect(missing.isEmpty, "\(missing.count) acknowledged events missing, e.g. \(missing.prefix(3))")
        #expect(Set(storedIDs).isSubset(of: Set(idOf.values)), "stored events that are not in the input")
        // Every stream dense from version 1, in sequence order.
        var versions: [String: Int64] = [:]
        for event in all {
            let key = event.tenant + "\u{0}" + event.stream
            #expect(event.streamVersion == (versions[key] ?? 0) + 1, "\(event.tenant)/\(event.stream) at \(event.position)")
            versions[key] = event.streamVersion
        }
        // The view built while nodes died equals a rebuild from the stream.
        let rebuiltRoot = cluster.directory + "/views-rebuilt"
        _ = try MaintainedView<RecordsProjector>.rebuild(root: rebuiltRoot, source: source, options: RecordsViewAccess.options())
        let rebuilt = try MaintainedView<RecordsProjector>.openReader(root: rebuiltRoot, source: source, options: RecordsViewAccess.options())
        defer { try? rebuilt.close() }
        #expect(live == (try viewRows(rebuilt.snapshot())), "the live view differs from a rebuild")
        print("cluster kill test: \(total) events, killed \(killed.map { "n\($0)" }), \(retries) chunk retries, \(restarts) extra restarts, \(stored) messages on each node")
    }
}

/// A view's rows as key ‖ value byte strings, in key order (for comparing two views).
func viewRows(_ snapshot: KVSnapshot) throws -> [[UInt8]] {
    let it = snapshot.makeIterator()
    var out: [[UInt8]] = []
    try it.seekToFirst()
    while it.isValid {
        out.append(Array(it.key) + [0xFF, 0xFE] + Array(it.value))
        try it.next()
    }
    return out
}
