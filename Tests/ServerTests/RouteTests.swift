import BackorderServer
import DataGenerator
import EventStore
import Foundation
import Hummingbird
import HummingbirdTesting
import RecordsView
import Testing

/// Every route of `backorder serve` through Hummingbird's router test client: statuses,
/// bodies, and that answers are the ones the CLI's library gives.
@Suite(.serialized) struct RouteTests {
    /// A served store in a fresh directory with one token per case, and the tokens.
    struct Fixture {
        let directory: String
        let served: ServedStore
        let tokens: TokenRegistry
        /// Tokens by name: `t001` (append, read, audit on t001), `reader` (read on t001),
        /// `consumer` (read, consume on t001),
        /// `t002` (everything on t002), `admin` (admin on every tenant).
        let token: [String: String]

        static func make(_ configure: (inout ServeOptions) -> Void = { _ in }) async throws -> Fixture {
            let directory = NSTemporaryDirectory() + "backorder-server-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var tokens = try TokenFile.load(directory + "/tokens")
            var token: [String: String] = [:]
            token["t001"] = try tokens.create(tenant: "t001", roles: [.append, .read, .audit], label: nil)
            token["reader"] = try tokens.create(tenant: "t001", roles: [.read], label: nil)
            token["consumer"] = try tokens.create(tenant: "t001", roles: [.read, .consume], label: nil)
            token["t002"] = try tokens.create(tenant: "t002", roles: [.append, .read, .audit], label: nil)
            token["admin"] = try tokens.create(tenant: "*", roles: [.admin], label: "ops")
            var options = ServeOptions(directory: directory + "/data")
            options.partitions = 4
            configure(&options)
            let served = try await ServedStore.open(options)
            return Fixture(directory: directory, served: served, tokens: try TokenRegistry(path: directory + "/tokens", interval: .zero), token: token)
        }

        func close() async throws {
            try await served.close()
            try? FileManager.default.removeItem(atPath: directory)
        }

        var app: some ApplicationProtocol { Application(router: BackorderServer.router(served, tokens: tokens)) }
    }

    /// Generated events of tenants t001 and t002, as NDJSON per tenant.
    static func input(events: Int = 4_000) -> [String: String] {
        var options = GeneratorOptions()
        options.events = events
        options.tenants = 2
        options.customersPerTenant = 40
        options.productsPerTenant = 15
        options.seed = 7
        options.end = 1_764_547_200_000_000  // 2025-12-01
        var byTenant: [String: String] = [:]
        for line in EventGenerator(options: options) {
            let text = String(decoding: line, as: UTF8.self)
            let tenant = text.contains("\"tenant\":\"t001\"") ? "t001" : "t002"
            byTenant[tenant, default: ""] += text + "\n"
        }
        return byTenant
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    func auth(_ token: String?) -> HTTPFields {
        var fields: HTTPFields = [:]
        if let token { fields[.authorization] = "Bearer " + token }
        return fields
    }

    @Test func appendsAreValidatedAtomicAndIdempotent() async throws {
        let fixture = try await Fixture.make()
        let input = Self.input()
        try await fixture.app.test(.router) { client in
            let t001 = auth(fixture.token["t001"])
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: input["t001"]!)) { response in
                #expect(response.status == .created)
                let body = try Self.json(response.body)
                #expect(body["appended"] as? Int == input["t001"]!.split(separator: "\n").count)
            }
            // The same body again: every line a duplicate, nothing appended.
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: input["t001"]!)) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["appended"] as? Int == 0 && body["duplicates"] as? Int == input["t001"]!.split(separator: "\n").count)
            }
            // One bad line rejects the request, naming the line and the field.
            let bad = #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-NEW","number":"1","name":"New"}}"# + "\n"
                + #"{"type":"DeliveryRecorded","actor":"u1","data":{"recordId":"R-NONE","quantity":1}}"# + "\n"
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: bad)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(response.headers[.contentType] == "application/problem+json")
                let body = try Self.json(response.body)
                let errors = try #require(body["errors"] as? [[String: Any]])
                #expect(errors.count == 1 && errors[0]["line"] as? Int == 2 && errors[0]["field"] as? String == "data.recordId")
            }
            try await client.execute(uri: "/v1/tenants/t001/customers/C-NEW", method: .get, headers: t001) { response in
                #expect(response.status == .notFound, "the valid first line of a rejected request was not appended")
            }
            // A line naming another tenant is refused; one without a tenant is the URL's.
            let other = #"{"type":"CustomerRegistered","tenant":"t002","actor":"u1","data":{"customerId":"C-X","number":"1","name":"X"}}"# + "\n"
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: other)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("not this request's tenant t001"))
            }
            // A JSON array is taken as well as NDJSON.
            let array = #"[{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-ARR","number":"2","name":"Array"}}]"#
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: array)) { response in
                #expect(response.status == .created)
            }
            try await client.execute(uri: "/v1/tenants/t001/customers/C-ARR", method: .get, headers: t001) { response in
                #expect(response.status == .ok, "an acknowledged append is in the next query's answer")
            }
        }
        try await fixture.close()
    }

    @Test func streamAppendsCheckTheVersionWithIfMatch() async throws {
        let fixture = try await Fixture.make()
        try await fixture.app.test(.router) { client in
            var headers = auth(fixture.token["t001"])
            let uri = "/v1/tenants/t001/streams/customer/C-IF"
            let register = #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-IF","number":"7","name":"If"}}"#
            let update = #"{"type":"CustomerUpdated","actor":"u1","data":{"customerId":"C-IF","name":"If Updated"}}"#
            headers[.ifNoneMatch] = "*"
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: register + "\n")) { response in
                #expect(response.status == .created && response.headers[.eTag] == "\"1\"")
            }
            // The stream exists now: If-None-Match fails, saying its version.
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: update + "\n")) { response in
                #expect(response.status == .preconditionFailed && response.headers[.eTag] == "\"1\"")
            }
            headers[.ifNoneMatch] = nil
            headers[.ifMatch] = "\"0\""
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: update + "\n")) { #expect($0.status == .preconditionFailed) }
            headers[.ifMatch] = "\"1\""
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: update + "\n")) { response in
                #expect(response.status == .created && response.headers[.eTag] == "\"2\"")
            }
            // A line for another stream is refused; the stream is unchanged.
            headers[.ifMatch] = "\"2\""
            let other = #"{"type":"CustomerUpdated","actor":"u1","data":{"customerId":"C-000001","name":"Other"}}"#
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: other + "\n")) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("not this request's stream customer/C-IF"))
            }
            try await client.execute(uri: uri, method: .get, headers: auth(fixture.token["t001"])) { response in
                #expect(response.headers[.eTag] == "\"2\"")
                #expect(String(buffer: response.body).contains("If Updated"))
            }
            headers[.ifMatch] = "three"
            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: update + "\n")) { #expect($0.status == .badRequest) }
        }
        try await fixture.close()
    }

    @Test func queriesAnswerWhatTheLibraryAnswersAndReadsPage() async throws {
        let fixture = try await Fixture.make()
        let input = Self.input()
        try await fixture.app.test(.router) { client in
            for tenant in ["t001", "t002"] {
                try await client.execute(uri: "/v1/tenants/\(tenant)/events", method: .post, headers: auth(fixture.token[tenant]),
                                         body: ByteBuffer(string: input[tenant]!)) { #expect($0.status == .created) }
            }
            let t001 = auth(fixture.token["reader"])
            // The answers of a reader opened on the same directory, as the CLI opens it.
            let access = try RecordsViewAccess.open(root: fixture.served.options.directory, source: fixture.served.source)
            let queries = access.queries(tenant: "t001")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let now = "2025-12-01T00:00:00Z"
            let expected = try encoder.encode(queries.dashboard(range: TimeRange(), now: 1_764_547_200_000_000))
            try await client.execute(uri: "/v1/tenants/t001/dashboard?now=\(now)", method: .get, headers: t001) { response in
                #expect(response.status == .ok)
                #expect(Data(response.body.readableBytesView) == expected + [10])
            }
            var filter = RecordFilter()
            filter.status = .pending
            filter.limit = 5
            let page = try queries.records(filter)
            let expectedPage = try encoder.encode(page) + [10]
            try await client.execute(uri: "/v1/tenants/t001/records?status=pending&limit=5", method: .get, headers: t001) { response in
                #expect(Data(response.body.readableBytesView) == expectedPage)
            }
            let id = try #require(page.records.first?.id)
            try await client.execute(uri: "/v1/tenants/t001/records/\(id)", method: .get, headers: t001) { response in
                let body = try Self.json(response.body)
                #expect((body["history"] as? [Any])?.isEmpty == false)
            }
            // An unchanged view answers 304 to the ETag it gave; a new publication does not.
            let etag = try await client.execute(uri: "/v1/tenants/t001/records/\(id)", method: .get, headers: t001) { try #require($0.headers[.eTag]) }
            var conditional = t001
            conditional[.ifNoneMatch] = etag
            try await client.execute(uri: "/v1/tenants/t001/records/\(id)", method: .get, headers: conditional) { response in
                #expect(response.status == .notModified && response.body.readableBytes == 0)
            }
            let note = #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-ETAG","number":"1","name":"ETag"}}"#
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: auth(fixture.token["t001"]), body: ByteBuffer(string: note + "\n")) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/v1/tenants/t001/records/\(id)", method: .get, headers: conditional) { response in
                #expect(response.status == .ok && response.headers[.eTag] != etag)
            }
            // Audit history needs the audit role: the reader token may not.
            try await client.execute(uri: "/v1/tenants/t001/records/\(id)/history", method: .get, headers: t001) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/tenants/t001/records/\(id)/history", method: .get, headers: auth(fixture.token["t001"])) { response in
                #expect(response.status == .ok)
                let entries = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
                #expect(entries.first?["type"] as? String == "OutOfStockReported")
            }
            try await client.execute(uri: "/v1/tenants/t001/streams/record/\(id)", method: .get, headers: t001) { response in
                #expect(response.status == .ok && response.headers[.eTag] != nil)
            }
            try await client.execute(uri: "/v1/tenants/t001/records?status=lost", method: .get, headers: t001) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/v1/tenants/t001/records/R-NONE", method: .get, headers: t001) { #expect($0.status == .notFound) }
            // Pages of events: together every event of the tenant once, in order, none of the other's.
            var from: String? = nil
            var seen = 0
            var pages = 0
            while true {
                let uri = "/v1/tenants/t001/events?limit=700" + (from.map { "&from=\($0)" } ?? "")
                let body = try await client.execute(uri: uri, method: .get, headers: t001) { try Self.json($0.body) }
                let events = try #require(body["events"] as? [[String: Any]])
                #expect(events.allSatisfy { $0["tenant"] as? String == "t001" })
                seen += events.count
                pages += 1
                if body["end"] as? Bool == true { break }
                from = body["next"] as? String
                #expect(pages < 100)
            }
            #expect(seen == input["t001"]!.split(separator: "\n").count + 1, "the input and C-ETAG")
            try await client.execute(uri: "/v1/tenants/t001/events?from=1,2", method: .get, headers: t001) { #expect($0.status == .badRequest) }
            // A new request shows on the next dashboard at once, cached answer or not.
            let before = try await client.execute(uri: "/v1/tenants/t001/dashboard", method: .get, headers: t001) { try Self.json($0.body)["requests"] as? Int }
            let report = #"{"type":"OutOfStockReported","actor":"u1","data":{"recordId":"R-NEW","customerId":"C-000001","productId":"P-000001","quantity":3}}"#
            let product = try await client.execute(uri: "/v1/tenants/t001/products/P-000001", method: .get, headers: t001) { try Self.json($0.body) }
            let sized = (product["sizes"] as? [String])?.first.map { report.replacingOccurrences(of: #""quantity":3"#, with: #""size":"\#($0)","quantity":3"#) } ?? report
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: auth(fixture.token["t001"]), body: ByteBuffer(string: sized + "\n")) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
            let after = try await client.execute(uri: "/v1/tenants/t001/dashboard", method: .get, headers: t001) { try Self.json($0.body)["requests"] as? Int }
            #expect(after == before.map { $0 + 1 })
            try access.close()
        }
        try await fixture.close()
    }

    @Test func aTokenNeverReachesAnotherTenant() async throws {
        let fixture = try await Fixture.make()
        let input = Self.input(events: 600)
        try await fixture.app.test(.router) { client in
            try await client.execute(uri: "/v1/tenants/t002/events", method: .post, headers: auth(fixture.token["t002"]),
                                     body: ByteBuffer(string: input["t002"]!)) { #expect($0.status == .created) }
            let routes: [(HTTPRequest.Method, String)] = [
                (.post, "/v1/tenants/t002/events"), (.get, "/v1/tenants/t002/events"), (.get, "/v1/tenants/t002/streams/customer/C-000001"),
                (.get, "/v1/tenants/t002/dashboard"), (.get, "/v1/tenants/t002/records"), (.get, "/v1/tenants/t002/records/R-000001"),
                (.get, "/v1/tenants/t002/records/R-000001/history"), (.get, "/v1/tenants/t002/customers/C-000001"),
                (.get, "/v1/tenants/t002/products/P-000001"), (.get, "/v1/tenants/t002/insights"), (.get, "/v1/tenants/t002/live"),
                (.post, "/v1/tenants/t002/groups/g/fetch"), (.post, "/v1/tenants/t002/groups/g/ack"), (.post, "/v1/tenants/t002/groups/g/nack"),
                (.get, "/v1/tenants/t002/groups/g"), (.delete, "/v1/tenants/t002/groups/g/members/m"),
            ]
            for (method, uri) in routes {
                // Another tenant's token: as if the tenant did not exist.
                try await client.execute(uri: uri, method: method, headers: auth(fixture.token["t001"]), body: ByteBuffer(string: input["t002"]!)) { response in
                    #expect(response.status == .notFound, "\(method) \(uri) with t001's token")
                    #expect(!String(buffer: response.body).contains("C-0"), "no data of t002 in the answer")
                }
                try await client.execute(uri: uri, method: method, headers: auth(nil)) { #expect($0.status == .unauthorized, "\(method) \(uri) without a token") }
                try await client.execute(uri: uri, method: method, headers: auth("bo_" + String(repeating: "0", count: 64))) {
                    #expect($0.status == .unauthorized, "\(method) \(uri) with an unknown token")
                }
            }
            // Read-only tokens may not append; admin reaches every tenant and /metrics.
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: auth(fixture.token["reader"]), body: ByteBuffer(string: "{}")) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/v1/tenants/t002/dashboard", method: .get, headers: auth(fixture.token["admin"])) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get, headers: auth(fixture.token["t002"])) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/metrics", method: .get, headers: auth(fixture.token["admin"])) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("backorder_events_appended_total \(input["t002"]!.split(separator: "\n").count)"))
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
        }
        try await fixture.close()
    }

    @Test func limitsAnswer413And429() async throws {
        let fixture = try await Fixture.make { options in
            options.requestsPerSecond = 0.001  // no refill within the test, however slow the machine
            options.burst = 3
            options.maxBodyBytes = 4_096
            options.maxEventsPerRequest = 10
        }
        try await fixture.app.test(.router) { client in
            let t001 = auth(fixture.token["t001"])
            let big = String(repeating: "x", count: 5_000)
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: big)) { #expect($0.status == .contentTooLarge) }
            let many = String(repeating: "{}\n", count: 11)
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: many)) { response in
                #expect(response.status == .contentTooLarge)
                #expect(String(buffer: response.body).contains("the limit is 10"))
            }
            // Two requests of the burst of 3 are spent: one more is answered, the next is not.
            try await client.execute(uri: "/v1/tenants/t001/dashboard", method: .get, headers: t001) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/tenants/t001/dashboard", method: .get, headers: t001) { response in
                #expect(response.status == .tooManyRequests)
                #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1)
            }
            // Health probes are not limited; another token has its own bucket.
            try await client.execute(uri: "/healthz", method: .get, headers: t001) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/tenants/t002/dashboard", method: .get, headers: auth(fixture.token["t002"])) { #expect($0.status == .notFound) }
            // An empty body is no append.
            try await client.execute(uri: "/v1/tenants/t002/events", method: .post, headers: auth(fixture.token["t002"]), body: ByteBuffer(string: "")) {
                #expect($0.status == .badRequest)
            }
        }
        try await fixture.close()
    }

    /// The web dashboard's page and assets: served without a token (they hold no data),
    /// with a strict content security policy and an ETag that answers 304.
    @Test func theWebPageIsServedWithItsPolicyAndRevalidates() async throws {
        let fixture = try await Fixture.make()
        try await fixture.app.test(.router) { client in
            for (path, type) in [("/", "text/html"), ("/t/t001", "text/html"), ("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css")] {
                var tag = ""
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    #expect(response.headers[.contentType]?.hasPrefix(type) == true, "\(path)")
                    #expect(response.headers[.contentSecurityPolicy]?.hasPrefix("default-src 'none'; script-src 'self'") == true)
                    #expect(response.headers[.xContentTypeOptions] == "nosniff")
                    #expect(response.body.readableBytes > 500)
                    tag = response.headers[.eTag] ?? ""
                }
                #expect(tag.count == 26, "a quoted 24-digit tag, not \(tag)")
                try await client.execute(uri: path, method: .get, headers: [.ifNoneMatch: tag]) { response in
                    #expect(response.status == .notModified && response.body.readableBytes == 0, "\(path)")
                }
            }
            // The page links only its own assets: nothing from elsewhere.
            try await client.execute(uri: "/t/t001", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("src=\"/assets/app.js\"") && page.contains("href=\"/assets/app.css\"") && !page.contains("http"))
            }
        }
        try await fixture.close()
    }

    /// The dashboard and insights carry an ETag of their bytes: `304` while they are
    /// unchanged, a new tag once an append changes them.
    @Test func dashboardAndInsightsAnswer304UntilTheyChange() async throws {
        let fixture = try await Fixture.make()
        try await fixture.app.test(.router) { client in
            let t001 = auth(fixture.token["t001"])
            try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: Self.input(events: 1_000)["t001"]!)) {
                #expect($0.status == .created)
            }
            for path in ["/v1/tenants/t001/dashboard?now=2025-12-01", "/v1/tenants/t001/insights?by=product"] {
                var tag = ""
                try await client.execute(uri: path, method: .get, headers: t001) { response in
                    #expect(response.status == .ok)
                    tag = response.headers[.eTag] ?? ""
                }
                #expect(tag.count == 26, "\(path): \(tag)")
                var conditional = t001
                conditional[.ifNoneMatch] = tag
                try await client.execute(uri: path, method: .get, headers: conditional) { #expect($0.status == .notModified, "\(path)") }
                let more = #"{"id":"00000000-0000-4000-8000-0000000000\#(path.count)","type":"OutOfStockReported","actor":"u1","data":{"recordId":"R-NEW-\#(path.count)","customerId":"C-000001","productId":"P-000001","size":"L","quantity":7}}"#
                try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: t001, body: ByteBuffer(string: more + "\n")) { response in
                    #expect(response.status == .created, "\(String(buffer: response.body))")
                }
                try await client.execute(uri: path, method: .get, headers: conditional) { response in
                    #expect(response.status == .ok && response.headers[.eTag] != tag, "\(path) after an append")
                }
            }
        }
        try await fixture.close()
    }

    /// A token revoked or made while the server runs takes effect at its next check of the
    /// file (every request, in this fixture); a malformed file keeps the last good tokens.
    @Test func tokenChangesTakeEffectWithoutARestart() async throws {
        let fixture = try await Fixture.make()
        try await fixture.app.test(.router) { client in
            let reader = auth(fixture.token["reader"])
            try await client.execute(uri: "/v1/tenants/t001/live?from=0,0,0,0", method: .get, headers: auth("bo_0")) { #expect($0.status == .unauthorized) }
            var file = try TokenFile.load(fixture.directory + "/tokens")
            let readerID = try #require(file.entries.first { $0.tenant == "t001" && $0.roles == [.read] }?.id)
            let added = try file.create(tenant: "t002", roles: [.read], label: "new")
            try await client.execute(uri: "/v1/tenants/t002/records", method: .get, headers: auth(added)) { #expect($0.status != .unauthorized) }
            #expect(try file.revoke(id: readerID))
            try await client.execute(uri: "/v1/tenants/t001/records", method: .get, headers: reader) { #expect($0.status == .unauthorized) }
            // A broken file: the tokens read before stay in force.
            try Array("not json\n".utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: fixture.directory + "/tokens")) }
            try await client.execute(uri: "/v1/tenants/t002/records", method: .get, headers: auth(added)) { #expect($0.status != .unauthorized) }
            try await client.execute(uri: "/v1/tenants/t001/records", method: .get, headers: reader) { #expect($0.status == .unauthorized) }
        }
        try await fixture.close()
    }
}
