import Consumers
import EventStore
import Foundation
import Hummingbird
import OutOfStock
import ServiceLifecycle

/// Consumer groups over HTTP (docs/SERVER.md, "Consumer groups"): a tenant's services
/// follow its events with checkpoints, as `backorder consume` does, through
///
/// - `POST …/groups/{g}/fetch` — the next batch of the member (joining first when no
///   `member` is given), waiting up to `wait` seconds for one (a long poll);
/// - `POST …/groups/{g}/ack` and `…/nack` — the batch is done, or failed (delivered again
///   with backoff, parked after `maxDeliver`);
/// - `DELETE …/groups/{g}/members/{m}` — leave; `GET …/groups/{g}` — the lanes' state.
///
/// Taking part (fetch, ack, nack, leave) needs the `consume` role on the tenant, since it
/// moves the group's checkpoints; the status needs `read`.
struct GroupRoutes: Sendable {
    let served: ServedStore

    func add(to router: Router<ServerContext>) {
        let groups = router.group("v1/tenants/:tenant/groups/:group")
        if let pool = served.blockingCallPool { groups.add(middleware: BlockingCallsMiddleware(pool: pool)) }
        groups.get("", use: status)
        groups.post("fetch", use: fetch)
        groups.post("ack", use: acknowledge)
        groups.post("nack", use: fail)
        groups.delete("members/:member", use: leave)
    }

    /// The longest long poll, in seconds.
    static let maxWaitSeconds = 30.0
    /// Parked events listed per lane by the status route (`parkedCount` says how many).
    static let parkedShown = 100

    @Sendable func fetch(_ request: Request, context: ServerContext) async throws -> Response {
        let (tenant, group) = try Self.names(context, .consume)
        let query = request.uri.queryParameters
        let wait = try Self.seconds(query["wait"].map(String.init))
        let sessions = served.groups
        let session: GroupSessions.Session
        if let id = query["member"] {
            for fixed in ["max", "maxDeliver", "type"] where query[fixed[...]] != nil {
                throw Problem(.badRequest, "\(fixed) is fixed when a member joins (a fetch without member); member \(id) has its own")
            }
            session = try sessions.take(String(id), tenant: tenant, group: group)
        } else {
            var options = GroupSessions.JoinOptions()
            options.batchSize = try Self.integer(query["max"].map(String.init), "max", default: 100, 1...10_000)
            options.maxDeliver = try Self.integer(query["maxDeliver"].map(String.init), "maxDeliver", default: 5, 1...1_000)
            options.types = try Self.types(query["type"].map(String.init))
            do { session = try sessions.join(tenant: tenant, group: group, options) } catch { throw Self.problem(error, context) }
        }
        defer { sessions.release(session) }
        let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1_000))
        let stop = StopFlag()
        // A server stopping ends the wait at once (it would hold the shutdown up to `wait`).
        let delivery = try await withGracefulShutdownHandler {
            try await next(session, until: deadline, stop: stop, context)
        } onGracefulShutdown: {
            stop.set()
            served.appended.ring()
        }
        if let delivery { return TenantRoutes.json(try Self.deliveryJSON(delivery, member: session.id)) }
        var out: [UInt8] = Array(#"{"member":"#.utf8)
        JSONText.appendString(session.id, to: &out)
        out += Array(#","delivery":null,"lanes":"#.utf8)
        out += Array("[\(session.member.lanes.map(String.init).joined(separator: ","))]".utf8)
        out += Array(#","events":[]}"#.utf8)
        out.append(10)
        return TenantRoutes.json(out)
    }

    /// The member's next batch, waiting until `deadline` for one: woken by appends, and
    /// looking again every second (lanes freed by members that left). A batch that failed
    /// comes back once its backoff has passed.
    private func next(_ session: GroupSessions.Session, until deadline: ContinuousClock.Instant, stop: StopFlag,
                      _ context: ServerContext) async throws -> Delivery? {
        while !stop.isSet {
            // The ring count before the ends: an append after them rings past `seen`.
            let seen = served.appended.rings
            let ready = session.retryAt.map { ContinuousClock.now >= $0 } ?? true
            if ready {
                let delivery: Delivery?
                do { delivery = try session.member.next(ends: try served.groups.source.endOffsets()) } catch { throw Self.problem(error, context) }
                if let delivery {
                    session.retryAt = nil
                    return delivery
                }
            }
            let left = deadline - .now
            guard left > .zero else { return nil }
            var pause = min(left, .seconds(1))
            if let retryAt = session.retryAt, !ready { pause = min(pause, retryAt - .now) }
            if ready {
                _ = await served.appended.wait(after: seen, timeout: Self.seconds(pause))
            } else {
                try? await Task.sleep(for: pause)
            }
        }
        return nil
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// What a client sends to settle a batch.
    private struct Settlement: Decodable {
        var member: String
        var delivery: String
        var reason: String?
    }

    /// Reads the settlement, takes its member for the request and finds the batch in
    /// flight it names; `body` settles it.
    private func settling(_ request: Request, _ context: ServerContext,
                          _ body: (GroupSessions.Session, Delivery, Settlement) throws -> Response) async throws -> Response {
        let (tenant, group) = try Self.names(context, .consume)
        let settlement = try await Self.settlement(request, context)
        let session = try served.groups.take(settlement.member, tenant: tenant, group: group)
        defer { served.groups.release(session) }
        return try body(session, try Self.inFlight(session, settlement.delivery), settlement)
    }

    @Sendable func acknowledge(_ request: Request, context: ServerContext) async throws -> Response {
        try await settling(request, context) { session, delivery, _ in
            do { try session.member.acknowledge(delivery) } catch { throw Self.problem(error, context) }
            var out: [UInt8] = Array(#"{"acknowledged":"#.utf8)
            JSONText.appendInteger(Int64(delivery.events.count), to: &out)
            out += Array(#","lane":"#.utf8)
            JSONText.appendInteger(Int64(delivery.lane), to: &out)
            out += Array(#","checkpoint":"#.utf8)
            JSONText.appendInteger(delivery.range.upperBound, to: &out)
            out += Array("}\n".utf8)
            return TenantRoutes.json(out)
        }
    }

    @Sendable func fail(_ request: Request, context: ServerContext) async throws -> Response {
        try await settling(request, context) { session, delivery, settlement in
            let after: GroupMember.AfterFailure
            do { after = try session.member.failed(delivery, reason: settlement.reason ?? "nack over HTTP") } catch { throw Self.problem(error, context) }
            switch after {
            case let .retry(milliseconds):
                session.retryAt = .now + .milliseconds(milliseconds)
                return TenantRoutes.json(Array(#"{"retryAfterMilliseconds":\#(milliseconds),"parked":[]}"#.utf8) + [10])
            case let .parked(offsets):
                return TenantRoutes.json(Array(#"{"retryAfterMilliseconds":null,"parked":[\#(offsets.map(String.init).joined(separator: ","))]}"#.utf8) + [10])
            }
        }
    }

    @Sendable func leave(_ request: Request, context: ServerContext) async throws -> Response {
        let (tenant, group) = try Self.names(context, .consume)
        let session = try served.groups.take(try context.parameters.require("member"), tenant: tenant, group: group)
        served.groups.leave(session)
        return Response(status: .noContent)
    }

    /// Each lane's checkpoint, end, lag and parked events.
    @Sendable func status(_ request: Request, context: ServerContext) async throws -> Response {
        let (tenant, group) = try Self.names(context, .read)
        guard try served.groups.exists(tenant: tenant, name: group) else { throw Problem(.notFound, "no group \(group) in tenant \(tenant)") }
        let lanes: [LaneStatus]
        do { lanes = try served.groups.group(tenant: tenant, name: group).status(ends: try served.groups.source.endOffsets()) } catch {
            throw Self.problem(error, context)
        }
        var out: [UInt8] = Array(#"{"group":"#.utf8)
        JSONText.appendString(group, to: &out)
        out += Array(#","lanes":["#.utf8)
        for (i, lane) in lanes.enumerated() {
            if i > 0 { out.append(44) }
            out += Array(#"{"lane":\#(lane.lane),"checkpoint":\#(lane.checkpoint),"end":\#(lane.end),"lag":\#(lane.lag),"held":\#(lane.held),"parkedCount":\#(lane.parked.count),"parked":["#.utf8)
            // The first ones only: a lane may park up to LaneState.maxParked.
            for (k, parked) in lane.parked.prefix(Self.parkedShown).enumerated() {
                if k > 0 { out.append(44) }
                out += Array(#"{"offset":\#(parked.offset),"deliveries":\#(parked.deliveries),"reason":"#.utf8)
                JSONText.appendString(parked.reason, to: &out)
                out.append(125)
            }
            out += Array("]}".utf8)
        }
        out += Array("]}\n".utf8)
        return TenantRoutes.json(out)
    }

    // MARK: Helpers

    private static func names(_ context: ServerContext, _ role: Role) throws -> (tenant: String, group: String) {
        let tenant = try context.tenant(role)
        let group = try context.parameters.require("group")
        do { try ConsumerGroup.validate(name: group) } catch { throw Problem(.badRequest, "\(error)") }
        return (tenant, group)
    }

    /// `{"member", "delivery", "lane", "first", "end", "attempt", "replay", "events"}`: the
    /// events as `GET …/events` gives them; `delivery` names the batch in ack and nack.
    static func deliveryJSON(_ delivery: Delivery, member: String) throws -> [UInt8] {
        var out: [UInt8] = Array(#"{"member":"#.utf8)
        JSONText.appendString(member, to: &out)
        out += Array(#","delivery":"#.utf8)
        JSONText.appendString(token(delivery), to: &out)
        out += Array(#","lane":\#(delivery.lane),"first":\#(delivery.range.lowerBound),"end":\#(delivery.range.upperBound),"attempt":\#(delivery.attempt),"replay":\#(delivery.isReplay),"events":["#.utf8)
        for (i, event) in delivery.events.enumerated() {
            if i > 0 { out.append(44) }
            try EventOutput.appendLine(event, to: &out)
        }
        out += Array("]}\n".utf8)
        return out
    }

    /// A batch's name: lane, offsets and attempt, so that a late ack of an earlier attempt
    /// (its member let go meanwhile, or the batch failed) is told from the current one.
    static func token(_ delivery: Delivery) -> String {
        "\(delivery.lane):\(delivery.range.lowerBound):\(delivery.range.upperBound):\(delivery.attempt)\(delivery.isReplay ? ":r" : "")"
    }

    private static func inFlight(_ session: GroupSessions.Session, _ name: String) throws -> Delivery {
        guard let delivery = session.member.inFlight, token(delivery) == name else {
            let current = session.member.inFlight.map { "; the batch in flight is \(token($0))" } ?? "; none is in flight"
            throw Problem(.conflict, "delivery \(name) is not in flight for member \(session.id) (acknowledged, failed, or sent again since)\(current)")
        }
        return delivery
    }

    private static func settlement(_ request: Request, _ context: ServerContext) async throws -> Settlement {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        do { return try JSONDecoder().decode(Settlement.self, from: Data(body.readableBytesView)) } catch {
            throw Problem(.badRequest, #"the body must be JSON {"member": "…", "delivery": "…"} (and "reason" for a nack), as fetch answered"#)
        }
    }

    private static func seconds(_ text: String?) throws -> Double {
        guard let text else { return 0 }
        guard let seconds = Double(text), (0...maxWaitSeconds).contains(seconds) else {
            throw Problem(.badRequest, "wait=\(text): give seconds from 0 to \(Int(maxWaitSeconds))")
        }
        return seconds
    }

    private static func integer(_ text: String?, _ name: String, default value: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let text else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw Problem(.badRequest, "\(name)=\(text): give a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    private static func types(_ text: String?) throws -> Set<String> {
        guard let text else { return [] }
        let names = Set(text.split(separator: ",").map(String.init))
        for name in names where EventType.all[name] == nil {
            throw Problem(.badRequest, "type=\(name): unknown event type (types: \(EventType.all.keys.sorted().joined(separator: ", ")))")
        }
        return names
    }

    /// A consumer error is the client's to see (a full park list, a damaged state file is
    /// named to the server's log only).
    static func problem(_ error: any Error, _ context: ServerContext) -> Problem {
        if let problem = error as? Problem { return problem }
        if let error = error as? ConsumerError, error.description.contains("parked events") { return Problem(.conflict, error.description) }
        context.logger.error("consumer group failed: \(error)")
        var problem = Problem(.serviceUnavailable, "the consumer group could not be read or saved (the server's log says why)")
        problem.headers[.retryAfter] = "5"
        return problem
    }
}
