import EventStore
import Foundation
import Hummingbird
import OutOfStock
import RecordsView

/// The routes under `/v1/tenants/{tenant}`: appends, reads and the queries of one tenant
/// (docs/SERVER.md, docs/openapi.yaml). Every answer is the JSON the CLI's `--json` prints.
struct TenantRoutes: Sendable {
    let served: ServedStore

    func add(to router: Router<ServerContext>) {
        let tenant = router.group("v1/tenants/:tenant")
        if let pool = served.blockingCallPool { tenant.add(middleware: BlockingCallsMiddleware(pool: pool)) }
        tenant.post("events", use: append)
        tenant.get("events", use: readEvents)
        tenant.get("streams/:kind/:id", use: readStream)
        tenant.post("streams/:kind/:id", use: appendToStream)
        tenant.get("dashboard", use: dashboard)
        tenant.get("records", use: records)
        tenant.get("records/:id", use: record)
        tenant.get("records/:id/history", use: history)
        tenant.get("customers/:id", use: customer)
        tenant.get("products/:id", use: product)
        tenant.get("insights", use: insights)
        tenant.get("live", use: LiveStream(served: served).respond)
    }

    // MARK: reads

    /// Events of the tenant in the order they were appended, a page at a time:
    /// `from` is the previous page's `next` (one offset per lane).
    @Sendable func readEvents(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let source = served.recordedOrderSource
        let ends = try source.endOffsets()
        let from = try request.uri.queryParameters["from"].map { try Self.positions(String($0), lanes: ends.count) } ?? Array(repeating: 0, count: ends.count)
        let limit = try Self.integer(request, "limit", default: 100, 1...1_000)
        var reader = try RecordedOrderReader(source: source, from: zip(from, ends).map { min($0, $1) }, to: ends)
        var out: [UInt8] = Array(#"{"events":["#.utf8)
        var count = 0, scanned = 0
        // Other tenants' events are read past; a page stops after this many in all.
        while count < limit && scanned < 100_000, let event = try reader.next() {
            scanned += 1
            guard event.tenant == tenant else { continue }
            if count > 0 { out.append(44) }
            try EventOutput.appendLine(event, to: &out)
            count += 1
        }
        out += Array(#"],"next":""#.utf8)
        out += Array(reader.positions.map(String.init).joined(separator: ",").utf8)
        out += Array(#"","end":"#.utf8)
        out += Array((reader.positions == ends ? "true" : "false").utf8)
        out += Array("}\n".utf8)
        return Self.json(out)
    }

    /// One stream's events, oldest first.
    @Sendable func readStream(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let stream = try Self.stream(context)
        let events = try await served.backend.readStream(tenant: tenant, stream: stream)
        guard !events.isEmpty else { throw Problem(.notFound, "no stream \(stream) in tenant \(tenant)") }
        var out: [UInt8] = Array(#"{"stream":"#.utf8)
        JSONText.appendString(stream, to: &out)
        out += Array(#","version":"#.utf8)
        JSONText.appendInteger(Int64(events.count), to: &out)
        out += Array(#","events":["#.utf8)
        for (i, event) in events.enumerated() {
            if i > 0 { out.append(44) }
            try EventOutput.appendLine(event, to: &out)
        }
        out += Array("]}\n".utf8)
        var response = Self.json(out)
        response.headers[.eTag] = "\"\(events.count)\""
        return response
    }

    /// A record's audit history, read from the log: who, when, each field before → after.
    @Sendable func history(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.audit)
        let id = try context.parameters.require("id")
        let events = try await served.backend.readStream(tenant: tenant, stream: StreamName.record(id))
        guard !events.isEmpty else { throw Problem(.notFound, "no record \(id) in tenant \(tenant)") }
        return try Self.json(AuditEntry.history(of: events, stream: StreamName.record(id)))
    }

    // MARK: queries

    /// The view to answer from, current with every event acknowledged before the request
    /// (`?stale=ok`: as last published, without waiting), and the tenant's queries on it.
    private func queries(_ request: Request, _ tenant: String) async throws -> (RecordsQueries, LiveView.Published) {
        let published: LiveView.Published
        do { published = try await served.published(staleOK: request.uri.queryParameters["stale"] == "ok") } catch let error as LiveViewError {
            var problem = Problem(.serviceUnavailable, "\(error)")
            problem.headers[.retryAfter] = "1"
            throw problem
        }
        let queries = RecordsQueries(snapshot: published.snapshot, tenant: tenant)
        guard try queries.tenantExists() else { throw Problem(.notFound, "no tenant \(tenant)") }
        return (queries, published)
    }

    /// The dashboard, from the cache when the same one was computed for the same published
    /// view within the last second (`DashboardCache`). Its `ETag` names its bytes: `304`
    /// while nothing it shows has changed (ageing moves with the clock, so a tag of the
    /// publication alone would not do).
    @Sendable func dashboard(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let (range, now) = try QueryParameters.range(request)
        let (_, published) = try await queries(request, tenant)
        return try served.dashboardJSON(tenant: tenant, on: published, range: range, now: now, explicitNow: request.uri.queryParameters["now"] != nil)
            .response(to: request)
    }

    @Sendable func records(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let filter = try QueryParameters.recordFilter(request)
        let (queries, published) = try await queries(request, tenant)
        return try conditional(request, published, range: filter.range) {
            do { return try Self.json(try queries.records(filter)) } catch let error as QueryError {
                throw Problem(.badRequest, error.description)
            }
        }
    }

    @Sendable func record(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let id = try context.parameters.require("id")
        let (queries, published) = try await queries(request, tenant)
        return try conditional(request, published) {
            guard let row = try queries.record(id) else { throw Problem(.notFound, "no record \(id) in tenant \(tenant)") }
            return try Self.json(RecordDetails(row, tenant: tenant, source: served.source))
        }
    }

    @Sendable func customer(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let id = try context.parameters.require("id")
        let limit = try Self.integer(request, "limit", default: 50, 1...1_000)
        let (queries, published) = try await queries(request, tenant)
        return try conditional(request, published) {
            do { return try Self.json(try queries.customer(id, limit: limit)) } catch let error as QueryError {
                throw Problem(.notFound, error.description)
            }
        }
    }

    @Sendable func product(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let id = try context.parameters.require("id")
        let (queries, published) = try await queries(request, tenant)
        return try conditional(request, published) {
            do { return try Self.json(try queries.product(id)) } catch let error as QueryError {
                throw Problem(.notFound, error.description)
            }
        }
    }

    /// The answer with an `ETag` naming the publication it was computed on (and the time
    /// range, which `range=today` resolves with the clock), or `304` when the request's
    /// `If-None-Match` already names it. The tag holds the server's epoch: a restarted
    /// server's publications never match an older one's.
    private func conditional(_ request: Request, _ published: LiveView.Published, range: TimeRange = TimeRange(),
                             _ answer: () throws -> Response) throws -> Response {
        var tag = "\"\(served.epoch)-\(published.generation)"
        if range.from != nil || range.to != nil { tag += "-\(range.from ?? 0)-\(range.to ?? 0)" }
        tag += "\""
        return try EntityTag.conditional(request, tag, answer)
    }

    @Sendable func insights(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let by = request.uri.queryParameters["by"].map(String.init) ?? "region"
        guard let dimension = InsightDimension(rawValue: by) else { throw Problem(.badRequest, "by=\(by): use region, product or customer") }
        let limit = try Self.integer(request, "limit", default: 20, 1...1_000)
        let (range, _) = try QueryParameters.range(request)
        return TaggedJSON(try Self.sortedJSON(Array(try await queries(request, tenant).0.insights(by: dimension, range: range).prefix(limit))))
            .response(to: request)
    }

    // MARK: helpers

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The same JSON as the CLI's `--json` (sorted keys).
    static func json<T: Encodable>(_ value: T) throws -> Response { json(try sortedJSON(value)) }

    /// `value` as the CLI's `--json` prints it: sorted keys, then a newline.
    static func sortedJSON<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value)) + [10]
    }

    /// The stream a `streams/{kind}/{id}` route names (`record/R-1`).
    static func stream(_ context: ServerContext) throws -> String {
        let kind = try context.parameters.require("kind"), id = try context.parameters.require("id")
        guard ["record", "customer", "product"].contains(kind) else {
            throw Problem(.notFound, "no stream kind \(kind): streams are record/{id}, customer/{id} or product/{id}")
        }
        return kind + "/" + id
    }

    static func integer(_ request: Request, _ name: String, default value: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { return value }
        guard let n = Int(text), range.contains(n) else { throw Problem(.badRequest, "\(name)=\(text): must be an integer from \(range.lowerBound) to \(range.upperBound)") }
        return n
    }

    /// One offset per lane, comma-separated (a page's `next`, a live stream's event id).
    static func positions(_ text: String, lanes: Int) throws -> [Int64] {
        let offsets = text.split(separator: ",", omittingEmptySubsequences: false).map { Int64($0) ?? -1 }
        guard offsets.count == lanes, offsets.allSatisfy({ $0 >= 0 }) else {
            throw Problem(.badRequest, "\"\(text)\" is not a resume point: give \(lanes) offsets, comma-separated (a page's next, or a live event's id)")
        }
        return offsets
    }
}

extension ServerContext {
    /// The request's tenant, once the caller may do `role` on it.
    func tenant(_ role: Role) throws -> String {
        let tenant = try parameters.require("tenant")
        try authorize(tenant, role)
        return tenant
    }
}
