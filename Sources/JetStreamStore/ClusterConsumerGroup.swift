import Consumers
import EventLog
import Foundation

/// A consumer group of a JetStream store (docs/CONSUMERS.md, "On a cluster"), for members
/// on several machines. Its state is in the key-value bucket `BO_<group>_consumers`,
/// replicated like the events:
///
/// | key | value |
/// |---|---|
/// | `g<name in hex>.lane.<n>` | the holder's member id (varint length + UTF-8; empty: free), then the lane's `LaneState` |
/// | `g<name in hex>.member.<id>` | the member's id, rewritten as its heartbeat |
///
/// A tenant's own group (a server's, over HTTP) has the same keys under `t<tenant in
/// hex>.`, apart from the store-wide groups that `backorder groups` lists.
///
/// A lane's key is its lease: the holder rewrites it (compare-and-set on the key's
/// revision) every quarter of `leaseMilliseconds`, and every checkpoint it saves is a
/// compare-and-set too. A holder has stopped — died, hung, or been cut off — once its key
/// is older than a lease and a second (the slack for the cluster nodes' clocks and a round
/// trip), by the server's timestamps: each process reads the server's clock once (the
/// timestamp of a key it writes) and judges ages on that clock, never on its own, so a
/// machine whose clock is off takes nothing early. A key seen unchanged for a whole lease
/// on this process's monotonic clock has stopped too. From then on the old holder's writes
/// fail their compare-and-set and it stops delivering the lane; the new holder delivers
/// again from the last saved checkpoint. A write whose answer was lost (a timeout, a
/// leader election) is settled by reading the key back: holding the bytes written, it
/// succeeded.
public final class ClusterConsumerGroup: GroupCoordinator, @unchecked Sendable {
    // @unchecked: `held`, `observed`, `member` and `stopped` are touched under `lock`;
    // lane writes are serialized by `writes`.
    public let name: String
    public let laneCount: Int
    public let leaseMilliseconds: Int
    let bucket: NatsKeyValue
    private let prefix: String
    /// The id this process holds lanes under (its member id once it joins).
    private let ownerID = GroupMembership.newID()
    private let lock = NSLock()
    private let writes = NSLock()
    private var held: [Int: (revision: UInt64, state: LaneState)] = [:]
    private var lost: Set<Int> = []
    private var observed: [String: (revision: UInt64, since: ContinuousClock.Instant)] = [:]
    private var member = false
    private var heartbeat: Thread?
    private var stopped = false
    /// The server's clock minus this machine's, in nanoseconds (read once, when first needed).
    private var clockOffset: Double?

    init(bucket: NatsKeyValue, name: String, tenant: String? = nil, laneCount: Int, leaseMilliseconds: Int) throws {
        try ConsumerGroup.validate(name: name)
        precondition(laneCount >= 1 && leaseMilliseconds >= 100, "a group over \(laneCount) lanes, leases of \(leaseMilliseconds) ms")
        self.bucket = bucket
        self.name = name
        self.laneCount = laneCount
        self.leaseMilliseconds = leaseMilliseconds
        self.prefix = Self.prefix(name, tenant: tenant)
    }

    deinit { stopHeartbeat() }

    static func prefix(_ name: String, tenant: String? = nil) -> String {
        (tenant.map { scope($0) + "." } ?? "") + "g" + ByteCoding.hexString(name.utf8)
    }

    /// The first part of a tenant's own groups' keys.
    private static func scope(_ tenant: String) -> String { "t" + ByteCoding.hexString(tenant.utf8) }

    /// The groups with state in `bucket`: the store-wide ones, or `tenant`'s own.
    static func names(in bucket: NatsKeyValue, tenant: String? = nil) throws -> [String] {
        let scope = tenant.map(Self.scope)
        var names = Set<String>()
        for key in try bucket.keys() {
            var parts = key.split(separator: ".")
            if let scope {
                guard parts.count == 4, parts[0] == scope else { continue }
                parts.removeFirst()
            }
            guard parts.count == 3, parts[1] == "lane", parts[0].hasPrefix("g"), let bytes = ByteCoding.bytes(hex: parts[0].dropFirst()) else { continue }
            if let name = String(validating: bytes, as: UTF8.self), (try? ConsumerGroup.validate(name: name)) != nil { names.insert(name) }
        }
        return names.sorted()
    }

    private func laneKey(_ lane: Int) -> String { "\(prefix).lane.\(lane)" }
    private func memberKey(_ id: String) -> String { "\(prefix).member.\(id)" }

    private func encode(holder: String, _ state: LaneState) -> [UInt8] {
        var out: [UInt8] = []
        ByteCoding.appendString(holder, to: &out)
        out += state.encoded()
        return out
    }

    private func decode(_ entry: NatsKeyValue.Entry, lane: Int) throws -> (holder: String, state: LaneState) {
        let place = "key \(laneKey(lane)) of bucket \(bucket.bucket) (revision \(entry.revision))"
        let decoded: (String, Int)? = entry.value.withUnsafeBytes { raw in
            var reader = ByteReader(bytes: raw)
            return reader.string().map { ($0, reader.position) }
        }
        guard let (holder, at) = decoded else { throw ConsumerError("\(place) is damaged: no holder") }
        switch LaneState.decode(Array(entry.value[at...])) {
        case let .success(state):
            guard state.lane == lane else { throw ConsumerError("\(place) is damaged: it holds lane \(state.lane)") }
            return (holder, state)
        case let .failure(damage):
            throw ConsumerError("\(place) is damaged: \(damage.reason); the group's checkpoint for lane \(lane) is unknown — `backorder groups reset \(name) --to …` sets it")
        }
    }

    /// Whether the holder behind `entry` has stopped renewing it (see the type's comment).
    private func lapsed(_ key: String, _ entry: NatsKeyValue.Entry) throws -> Bool {
        let now = ContinuousClock.now
        let seen: ContinuousClock.Instant? = lock.withLock {
            if let seen = observed[key], seen.revision == entry.revision { return seen.since }
            observed[key] = (entry.revision, now)
            return nil
        }
        if let seen, now - seen >= .milliseconds(leaseMilliseconds) { return true }
        let serverNow = Date().timeIntervalSince1970 * 1e9 + (try serverClockOffset())
        return serverNow - Double(entry.createdNanoseconds) >= Double(leaseMilliseconds + Self.clockSlackMilliseconds) * 1e6
    }

    /// Allowed between the cluster nodes' clocks (a new stream leader stamps with its own)
    /// and for a round trip.
    static let clockSlackMilliseconds = 1_000

    /// The server's clock minus this machine's: the timestamp of a key written now, against
    /// the middle of the round trip. Read once per process.
    private func serverClockOffset() throws -> Double {
        if let known = lock.withLock({ clockOffset }) { return known }
        let key = "clock.\(ownerID)"
        let before = Date().timeIntervalSince1970 * 1e9
        try bucket.put(key, [])
        let after = Date().timeIntervalSince1970 * 1e9
        guard let entry = try bucket.get(key) else { throw ConsumerError("key \(key) of bucket \(bucket.bucket) vanished as it was written") }
        try? bucket.purge(key)
        let offset = Double(entry.createdNanoseconds) - (before + after) / 2
        lock.withLock { clockOffset = offset }
        return offset
    }

    /// Writes `value` under `key` if its revision is still `last`; the new revision, or nil
    /// when another process wrote the key meanwhile. A write whose answer was lost is
    /// settled by reading the key: holding `value`, it is ours (or as good as ours).
    private func compareAndSet(_ key: String, _ value: [UInt8], last: UInt64) throws -> UInt64? {
        let deadline = Date().addingTimeInterval(bucket.connection.retrySeconds)
        while true {
            var failure: NatsError?
            do {
                if let revision = try bucket.update(key, value, last: last) { return revision }
            } catch let error as NatsError where error.isTransient {
                failure = error
            }
            let current = try bucket.get(key)
            if let current, current.value == value { return current.revision }
            if current?.revision ?? 0 != last { return nil }  // another process wrote it
            // Unchanged: the write did not land. Again, until the deadline.
            if Date() >= deadline {
                if let failure { throw failure }
                return nil
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    // MARK: GroupCoordinator

    /// A look costs a scan of the bucket's keys: once per quarter lease, as often as
    /// leases are renewed.
    public var rebalanceMilliseconds: Int { leaseMilliseconds / 4 }

    public func state(lane: Int) throws -> LaneState {
        precondition((0..<laneCount).contains(lane), "lane \(lane) of \(laneCount)")
        if let mine = lock.withLock({ held[lane] }) { return mine.state }
        guard let entry = try bucket.get(laneKey(lane)) else { return LaneState(lane: lane, checkpoint: 0) }
        return try decode(entry, lane: lane).state
    }

    public func save(_ state: LaneState) throws {
        try writes.withLock {
            let (mine, isLost) = lock.withLock { (held[state.lane], lost.contains(state.lane)) }
            guard let mine, !isLost else {
                precondition(isLost, "a save of lane \(state.lane), which this process does not hold")
                throw ConsumerError("lane \(state.lane) of group \(name) was taken over by another member: this member did not renew its lease in time; the new holder delivers again from the last saved checkpoint")
            }
            guard try rewrite(state, last: mine.revision) else {
                throw ConsumerError("lane \(state.lane) of group \(name) was taken over by another member: its key changed under this member's lease; the new holder delivers again from the last saved checkpoint")
            }
        }
    }

    /// Writes a held lane's key with `state` over revision `last` (under `writes`): true,
    /// or false when another member wrote it meanwhile — the lane is then lost.
    private func rewrite(_ state: LaneState, last: UInt64) throws -> Bool {
        guard let revision = try compareAndSet(laneKey(state.lane), encode(holder: ownerID, state), last: last) else {
            _ = lock.withLock { lost.insert(state.lane) }
            return false
        }
        lock.withLock { held[state.lane] = (revision, state) }
        return true
    }

    public func tryLease(lane: Int) throws -> (any StorageLock)? {
        precondition((0..<laneCount).contains(lane), "lane \(lane) of \(laneCount)")
        let key = laneKey(lane)
        let taken: Bool = try writes.withLock {
            precondition(lock.withLock { held[lane] == nil }, "lane \(lane) leased twice by one process")
            let entry = try bucket.get(key)
            var state = LaneState(lane: lane, checkpoint: 0)
            if let entry {
                let current = try decode(entry, lane: lane)
                if try !current.holder.isEmpty && !lapsed(key, entry) { return false }
                state = current.state
            }
            guard let revision = try compareAndSet(key, encode(holder: ownerID, state), last: entry?.revision ?? 0) else { return false }
            lock.withLock {
                held[lane] = (revision, state)
                lost.remove(lane)
            }
            return true
        }
        guard taken else { return nil }
        startHeartbeat()
        return ClusterLaneLease(group: self, lane: lane)
    }

    /// Lets the lane go: its key says it is free (unless it was taken over).
    func release(lane: Int) {
        writes.withLock {
            guard let mine = lock.withLock({ held.removeValue(forKey: lane) }) else { return }
            let wasLost = lock.withLock { lost.remove(lane) != nil }
            if !wasLost { _ = try? compareAndSet(laneKey(lane), encode(holder: "", mine.state), last: mine.revision) }
        }
    }

    public func isHeld(lane: Int) throws -> Bool {
        guard let entry = try bucket.get(laneKey(lane)) else { return false }
        return try !decode(entry, lane: lane).holder.isEmpty && !lapsed(laneKey(lane), entry)
    }

    public func join() throws -> GroupMembership {
        try bucket.put(memberKey(ownerID), Array(ownerID.utf8))
        lock.withLock { member = true }
        startHeartbeat()
        return GroupMembership(id: ownerID) { [self] in
            // Under `writes`, as the heartbeat's renewal: a renewal cannot land after the purge.
            writes.withLock {
                lock.withLock { member = false }
                try? bucket.purge(memberKey(ownerID))
            }
        }
    }

    public func liveMembers(own: String?) -> Int {
        let members = ((try? bucket.keys()) ?? []).filter { $0.hasPrefix(prefix + ".member.") }
        var live = own == nil ? 0 : 1
        for key in members where key != own.map(memberKey) {
            guard let entry = try? bucket.get(key) else { continue }
            if (try? lapsed(key, entry)) ?? false { try? bucket.purge(key) } else { live += 1 }
        }
        return live
    }

    public func delete() throws {
        try withAllLanes {
            // Under `writes` and with nothing held any more, so the heartbeat rewrites no lane
            // meanwhile. The lanes' keys are named, not listed: a listing can miss a key that
            // is rewritten while it is gathered (it left one lane behind, held, in a test).
            try writes.withLock {
                lock.withLock { held = [:] }  // nothing left to free
                for lane in 0..<laneCount { try bucket.purge(laneKey(lane)) }
                for key in try bucket.keys() where key.hasPrefix(prefix + ".") { try bucket.purge(key) }
            }
        }
    }

    // MARK: Heartbeat

    /// Rewrites every held lane's key and the member's key each quarter lease.
    private func startHeartbeat() {
        let start = lock.withLock { () -> Bool in
            guard heartbeat == nil, !stopped else { return false }
            heartbeat = Thread { [weak self] in
                while let group = self, group.beat() {
                    let pause = Double(group.leaseMilliseconds) / 4_000
                    _ = consume group
                    Thread.sleep(forTimeInterval: pause)
                }
            }
            return true
        }
        if start { lock.withLock { heartbeat }?.start() }
    }

    private func stopHeartbeat() { lock.withLock { stopped = true } }

    /// Stops renewing leases and the membership without letting anything go, as a
    /// process that hangs or dies does (for tests).
    func halt() { stopHeartbeat() }

    /// One round of renewals; false once the group is let go.
    private func beat() -> Bool {
        let (lanes, stop) = lock.withLock { (held.keys.filter { !lost.contains($0) }, stopped) }
        if stop { return false }
        writes.withLock {
            if lock.withLock({ member }) { try? bucket.put(memberKey(ownerID), Array(ownerID.utf8)) }
        }
        for lane in lanes {
            writes.withLock {
                guard let mine = lock.withLock({ lost.contains(lane) ? nil : held[lane] }) else { return }
                _ = try? rewrite(mine.state, last: mine.revision)  // unreachable now: again next round
            }
        }
        return true
    }
}

/// A lane leased from a `ClusterConsumerGroup`; `release` frees it.
final class ClusterLaneLease: StorageLock, @unchecked Sendable {
    private let group: ClusterConsumerGroup
    private let lane: Int
    private let released = NSLock()
    private var done = false

    init(group: ClusterConsumerGroup, lane: Int) {
        self.group = group
        self.lane = lane
    }

    func release() {
        guard released.withLock({ let first = !done; done = true; return first }) else { return }
        group.release(lane: lane)
    }
}

extension JetStreamStore {
    /// The bucket of this store's consumer groups, `BO_<group>_consumers`, made on first
    /// use with the store's replicas.
    private func groupBucket(create: Bool) throws -> NatsKeyValue {
        try NatsKeyValue(connection: connection, bucket: streamName + "_consumers", replicas: replicas,
                         description: "backorder consumer groups of stream \(streamName)", create: create)
    }

    /// The consumer group `name` of this store (made on first use), one lane per
    /// partition (`lanes`); a member's lanes are taken over `leaseMilliseconds` after it stops.
    public func consumerGroup(named name: String, leaseMilliseconds: Int = ClusterConsumerGroup.defaultLeaseMilliseconds) async throws -> ClusterConsumerGroup {
        try await Self.onThread { try self.consumerGroup(named: name, tenant: nil, leaseMilliseconds: leaseMilliseconds) }
    }

    /// The consumer group `name` — `tenant`'s own, when given (a server's groups over
    /// HTTP) — made on first use. Blocks for a request when the bucket is new.
    public func consumerGroup(named name: String, tenant: String?, leaseMilliseconds: Int = ClusterConsumerGroup.defaultLeaseMilliseconds) throws -> ClusterConsumerGroup {
        try ClusterConsumerGroup(bucket: try groupBucket(create: true), name: name, tenant: tenant, laneCount: partitionCount, leaseMilliseconds: leaseMilliseconds)
    }

    /// Whether `tenant`'s group `name` has state (without making the bucket or the group).
    public func consumerGroupExists(named name: String, tenant: String?) throws -> Bool {
        let prefix = ClusterConsumerGroup.prefix(name, tenant: tenant) + "."
        do { return try groupBucket(create: false).keys().contains { $0.hasPrefix(prefix) } } catch let error as NatsError where error.status == "NATS_NOT_FOUND" {
            return false
        }
    }

    /// The consumer groups with state in this store — the store-wide ones, or `tenant`'s
    /// own (none, without making the bucket, when no group was ever used).
    public func consumerGroupNames(tenant: String? = nil) async throws -> [String] {
        try await Self.onThread {
            do { return try ClusterConsumerGroup.names(in: try self.groupBucket(create: false), tenant: tenant) } catch let error as NatsError where error.status == "NATS_NOT_FOUND" {
                return []
            }
        }
    }
}

extension ClusterConsumerGroup {
    /// Five seconds: a dead member's lanes move once its keys are this and a second of
    /// slack old (plus one look by the others): within about 6–8 s.
    public static let defaultLeaseMilliseconds = 5_000
}
