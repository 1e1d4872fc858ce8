import Consumers
import EventLog
import EventStore
import Foundation
import JetStreamStore

/// The consumer-group members a server holds for its HTTP clients (docs/SERVER.md,
/// "Consumer groups"). A client joins by fetching without a member id; the server makes a
/// `GroupMember` for it — which leases lanes like a `backorder consume` process, beside
/// them — and answers with the member's id, which the client sends with every later
/// fetch, ack and nack. A member not heard from for `idleSeconds` is let go: its leases
/// are released and a batch it had in flight is delivered again, to whichever member
/// takes the lane (at least once, as with a killed `consume`).
///
/// HTTP groups are per tenant: a tenant's group `g` lives in
/// `ConsumerGroup.tenantRoot(data:tenant:)/g/` (on a cluster, under the tenant's keys of the
/// store's group bucket, `ClusterConsumerGroup`) and delivers that tenant's events only.
///
/// Each member holds open files (its member lock and a lease per lane) — on a cluster, a
/// thread renewing its leases — so members are limited per tenant (`maxMembersPerTenant`)
/// and in all (from the process's open-file limit; `maxClusterSessions`), and a join
/// beyond either answers 503.
final class GroupSessions: @unchecked Sendable {
    // @unchecked: `sessions` is guarded by `lock`; a `GroupMember` (not thread-safe) is used
    // by one request at a time, which `Session.busy` (under the lock) ensures.

    /// What a client fixes when it joins.
    struct JoinOptions {
        var batchSize = 100
        var maxDeliver = 5
        var types: Set<String> = []
    }

    final class Session {
        let id: String
        let tenant: String
        let group: String
        let member: GroupMember
        var busy = false
        var lastUsed = ContinuousClock.now
        /// A failed batch is not handed out again before this (the backoff of its nack).
        var retryAt: ContinuousClock.Instant?

        init(tenant: String, group: String, member: GroupMember) {
            self.id = member.memberID
            self.tenant = tenant
            self.group = group
            self.member = member
        }

        /// Sessions are found by tenant, group and id together: ids are unique within a
        /// group only.
        var key: String { Self.key(tenant, group, id) }
        static func key(_ tenant: String, _ group: String, _ id: String) -> String { tenant + "\u{0}" + group + "\u{0}" + id }
    }

    /// Most members one tenant may hold at once.
    static let maxMembersPerTenant = 64
    /// Most members held at once on a cluster store (each renews its leases on a thread).
    static let maxClusterSessions = 256

    /// Where the groups' state is kept.
    enum Home {
        /// Files under the data directory (the embedded log).
        case files(dataDirectory: String)
        /// The cluster store's group bucket.
        case cluster(JetStreamStore)
    }

    private let home: Home
    /// The events members read, one lane per partition.
    let source: any EventSource
    private let storage: any Storage
    let idleSeconds: Double
    /// Most members held at once, over all tenants, and what sets it (for the 503's message).
    let maxSessions: Int
    private let sessionLimit: String
    private let lock = NSLock()
    private var sessions: [String: Session] = [:]
    private var closed = false

    /// `openFiles`: the process's open-file limit, of which members may use what the store
    /// and the connections leave (each member: a lock file and one lease per lane).
    init(home: Home, source: any EventSource, idleSeconds: Double, openFiles: Int, storage: any Storage = PosixStorage()) {
        precondition(idleSeconds > 0, "members are let go after a positive idle time")
        self.home = home
        self.source = source
        self.storage = storage
        self.idleSeconds = idleSeconds
        switch home {
        case .files:
            maxSessions = max(1, min(1_000, (openFiles / 2) / (source.partitionCount + 2)))
            sessionLimit = "its limit (set by its open-file limit)"
        case .cluster:
            // A cluster member holds no files but a renewal thread and a key-value handle.
            maxSessions = Self.maxClusterSessions
            sessionLimit = "its limit on a cluster store"
        }
    }

    /// The group `name` of `tenant`, made on first use.
    func group(tenant: String, name: String) throws -> any GroupCoordinator {
        switch home {
        case let .files(data):
            let root = ConsumerGroup.tenantRoot(data: data, tenant: tenant)
            try storage.createDirectory(root)
            return try ConsumerGroup(root: root, name: name, laneCount: source.partitionCount, storage: storage)
        case let .cluster(store):
            return try store.consumerGroup(named: name, tenant: tenant)
        }
    }

    /// Whether `tenant` has a group `name` (status reads do not make one).
    func exists(tenant: String, name: String) throws -> Bool {
        switch home {
        case let .files(data): storage.exists(ConsumerGroup.tenantRoot(data: data, tenant: tenant) + "/" + name)
        case let .cluster(store): try store.consumerGroupExists(named: name, tenant: tenant)
        }
    }

    /// Joins `group` as a new member and takes the session for the calling request.
    func join(tenant: String, group name: String, _ options: JoinOptions) throws -> Session {
        let group = try group(tenant: tenant, name: name)
        var memberOptions = MemberOptions()
        memberOptions.maxInFlight = options.batchSize
        memberOptions.maxDeliver = options.maxDeliver
        let types = options.types
        memberOptions.filter = { event in event.tenant == tenant && (types.isEmpty || types.contains(event.type)) }
        let member = try GroupMember(group: group, source: source, options: memberOptions)
        let session = Session(tenant: tenant, group: name, member: member)
        session.busy = true
        let refused: String? = lock.withLock {
            if closed { return "the server is stopping" }
            if sessions.values.count(where: { $0.tenant == tenant }) >= Self.maxMembersPerTenant {
                return "tenant \(tenant) holds \(Self.maxMembersPerTenant) members, the limit of a tenant; let some go (DELETE …/members/{id}) or wait \(Int(idleSeconds)) s for idle ones to expire"
            }
            if sessions.count >= maxSessions {
                return "the server holds \(maxSessions) members, \(sessionLimit); let some go (DELETE …/members/{id}) or wait \(Int(idleSeconds)) s for idle ones to expire"
            }
            precondition(sessions[session.key] == nil, "member \(session.id) of group \(name) registered twice")
            sessions[session.key] = session
            return nil
        }
        if let refused {
            member.close()
            throw Problem(.serviceUnavailable, refused)
        }
        return session
    }

    /// Takes the member `id` of `tenant`'s `group` for the calling request; `release` gives
    /// it back. A member in use by another request answers 409; an unknown one (never
    /// made, let go, or idle too long) 404.
    func take(_ id: String, tenant: String, group: String) throws -> Session {
        try lock.withLock {
            guard let session = sessions[Session.key(tenant, group, id)] else {
                throw Problem(.notFound, "no member \(id) in group \(group) (a member idle for \(Int(idleSeconds)) s is let go and its batch delivered again; fetch without member to join anew)")
            }
            guard !session.busy else { throw Problem(.conflict, "member \(id) is serving another request; a member takes one request at a time") }
            session.busy = true
            return session
        }
    }

    func release(_ session: Session) {
        let stopping = lock.withLock {
            session.busy = false
            session.lastUsed = .now
            if closed { sessions.removeValue(forKey: session.key) }
            return closed
        }
        if stopping { session.member.close() }
    }

    /// Lets the member go (its leases released; a batch in flight is delivered again).
    func leave(_ session: Session) {
        lock.withLock { _ = sessions.removeValue(forKey: session.key) }
        session.member.close()
    }

    /// Lets go of members idle for longer than `idleSeconds`; how many.
    @discardableResult
    func expireIdle(now: ContinuousClock.Instant = .now) -> Int {
        let idle: [Session] = lock.withLock {
            let expired = sessions.values.filter { !$0.busy && now - $0.lastUsed > .seconds(idleSeconds) }
            for session in expired { sessions.removeValue(forKey: session.key) }
            return expired
        }
        for session in idle { session.member.close() }
        return idle.count
    }

    /// Members held now.
    var count: Int { lock.withLock { sessions.count } }

    /// Lets every member go and refuses new ones (the server is stopping). A member serving
    /// a request is let go when that request gives it back.
    func close() {
        let idle: [Session] = lock.withLock {
            closed = true
            let idle = sessions.values.filter { !$0.busy }
            for session in idle { sessions.removeValue(forKey: session.key) }
            return idle
        }
        for session in idle { session.member.close() }
    }
}
