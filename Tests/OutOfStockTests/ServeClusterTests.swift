import Foundation
import Testing
import TestSupport

/// `backorder serve --cluster` as a process against a real nats-server: the routes work on
/// the JetStream store, and what another writer appends to the stream meanwhile reaches
/// the live stream, the queries, the version checks, the server's own appends and the
/// consumer groups.
@Suite(.serialized) struct ServeClusterTests {
    typealias Connection = ServeProcessTests.Connection

    static func event(_ n: Int, _ type: String, _ data: String) -> String {
        #"{"id":"00000000-0000-4000-8000-\#(String(format: "%012d", n))","type":"\#(type)","tenant":"acme","actor":"ann","data":{\#(data)}}"#
    }

    static let idStem = "00000000-0000-4000-8000-"

    /// A one-node cluster and a new directory for the server's files (both the caller's to
    /// remove); a missing nats-server fails the test.
    static func clusterAndDirectory() throws -> (NatsTestCluster, String) {
        try #require(NatsTestCluster.serverAvailable, "nats-server is not installed: the cluster tests need it (make deps installs it)")
        let cluster = try NatsTestCluster(nodes: 1)
        let dir = freshDirectory()
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            cluster.stop()
            throw error
        }
        return (cluster, dir)
    }

    @Test func aServerOnAClusterSeesWhatOtherWritersAppend() throws {
        let (cluster, dir) = try Self.clusterAndDirectory()
        defer {
            cluster.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let clusterOptions = ["--cluster", cluster.urls, "--replicas", "1"]
        let server = try ServeProcessTests.Server.start(data: dir + "/served", output: dir + "/serve", store: clusterOptions)
        defer { server.stop() }
        let live = try Connection(port: server.port)
        try live.send("GET", "/v1/tenants/acme/live")
        _ = try live.read(until: "retry: 1000\n\n")

        // Appended through the server.
        let producer = try Connection(port: server.port)
        let first = [Self.event(1, "CustomerRegistered", #""customerId":"C-1","number":"1","name":"Berg""#),
                     Self.event(2, "ProductRegistered", #""productId":"P-1","sku":"S1","name":"Parka","sizes":["M","L"]"#),
                     Self.event(3, "OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","size":"M","quantity":5"#)]
        try producer.send("POST", "/v1/tenants/acme/events", body: first.joined(separator: "\n") + "\n")
        let appended = try producer.response()
        #expect(appended.status == 201, "\(appended.body)")
        #expect(try live.read(until: "event: dashboard").contains("R-1"))

        // Appended by another process, straight to the stream.
        let theirs = [Self.event(4, "OutOfStockReported", #""recordId":"R-2","customerId":"C-1","productId":"P-1","size":"L","quantity":2"#),
                      Self.event(5, "OutOfStockAmended", #""recordId":"R-2","quantity":3"#)]
        let (status, _, err) = try runBackorder(["append", "-", "--data", dir + "/cli"] + clusterOptions, stdin: theirs.joined(separator: "\n") + "\n")
        #expect(status == 0, "\(err)")
        // The live stream delivers them: the server looks for other writers' events every
        // 50 ms (without looking, the stream's heartbeat, 15 s, would be the first to find them).
        let appendedByThem = ContinuousClock.now
        let delivered = try live.read(until: Self.idStem + "000000000005")
        #expect(delivered.contains(Self.idStem + "000000000004"), "\(delivered)")
        #expect(ContinuousClock.now - appendedByThem < .seconds(3), "found by looking, not by the heartbeat")
        // A customer the other writer registered is known to the server's next append (its
        // index learned the other writer's streams): a report naming it is accepted.
        let (registered, _, registerErr) = try runBackorder(["append", "-", "--data", dir + "/cli"] + clusterOptions,
                                                            stdin: Self.event(7, "CustomerRegistered", #""customerId":"C-2","number":"2","name":"Lind""#) + "\n")
        #expect(registered == 0, "\(registerErr)")
        _ = try live.read(until: Self.idStem + "000000000007")
        try producer.send("POST", "/v1/tenants/acme/events",
                          body: Self.event(8, "OutOfStockReported", #""recordId":"R-3","customerId":"C-2","productId":"P-1","size":"M","quantity":1"#) + "\n")
        let forTheirCustomer = try producer.response()
        #expect(forTheirCustomer.status == 201, "\(forTheirCustomer.body)")
        // A query made after that append answers with it.
        try producer.send("GET", "/v1/tenants/acme/dashboard")
        let dashboard = try producer.response()
        #expect(dashboard.status == 200 && dashboard.body.contains(#""requests":3"#), "\(dashboard.body)")
        try producer.send("GET", "/v1/tenants/acme/records/R-2")
        let record = try producer.response()
        #expect(record.status == 200 && record.body.contains(#""quantity":3"#), "\(record.body)")
        // The stream the other writer made: read, and its version checked, from the stream.
        try producer.send("GET", "/v1/tenants/acme/streams/record/R-2")
        let stream = try producer.response()
        #expect(stream.status == 200 && stream.body.contains(Self.idStem + "000000000005"), "\(stream.body)")
        let delivery = Self.event(6, "DeliveryRecorded", #""recordId":"R-2","quantity":1"#)
        try producer.send("POST", "/v1/tenants/acme/streams/record/R-2", body: delivery + "\n", headers: ["If-Match": "\"1\""])
        let stale = try producer.response()
        #expect(stale.status == 412, "\(stale.body)")
        try producer.send("POST", "/v1/tenants/acme/streams/record/R-2", body: delivery + "\n", headers: ["If-Match": "\"2\""])
        let current = try producer.response()
        #expect(current.status == 201, "\(current.body)")

        // A tenant's consumer group over HTTP, kept in the cluster's group bucket: every
        // event of the tenant, whoever appended it, delivered once.
        var seen = Set<String>()
        try producer.send("POST", "/v1/tenants/acme/groups/mail/fetch?wait=0")
        var answer = try producer.response().body
        let member = try #require(answer.firstMatch(of: /"member":"([0-9a-f]+)"/).map { String($0.1) }, "\(answer)")
        while let batch = answer.firstMatch(of: /"delivery":"([0-9:r]+)"/).map({ String($0.1) }) {
            for match in answer.matches(of: /00000000-0000-4000-8000-([0-9]{12})/) { #expect(seen.insert(String(match.1)).inserted, "delivered twice: \(match.1)") }
            try producer.send("POST", "/v1/tenants/acme/groups/mail/ack", body: #"{"member":"\#(member)","delivery":"\#(batch)"}"#)
            #expect(try producer.response().status == 200)
            try producer.send("POST", "/v1/tenants/acme/groups/mail/fetch?member=\(member)&wait=0")
            answer = try producer.response().body
        }
        #expect(seen.count == 8, "\(seen.sorted())")
        try producer.send("GET", "/v1/tenants/acme/groups/mail")
        let group = try producer.response()
        #expect(group.status == 200 && group.body.matches(of: /"lane":/).count == 8, "\(group.body)")

        server.process.terminate()
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0, "\((try? String(contentsOfFile: server.output + ".stderr", encoding: .utf8)) ?? "")")
        // A tenant's group is not one of the store-wide groups the command line lists; it is
        // one of the tenant's, shown with its checkpoints saved and its lanes let go.
        let (listed, names, listErr) = try runBackorder(["groups", "list", "--data", dir + "/cli"] + clusterOptions)
        #expect(listed == 0 && !names.contains("mail"), "\(names)\(listErr)")
        let (tenantListed, tenantNames, _) = try runBackorder(["groups", "list", "--tenant", "acme", "--data", dir + "/cli"] + clusterOptions)
        #expect(tenantListed == 0 && tenantNames.contains("mail"), "\(tenantNames)")
        let (shown, table, showErr) = try runBackorder(["groups", "show", "mail", "--tenant", "acme", "--data", dir + "/cli"] + clusterOptions)
        #expect(shown == 0 && table.split(separator: "\n").count == 1 + 8 && !table.contains("yes"), "\(table)\(showErr)")
        #expect(table.split(separator: "\n").dropFirst().allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true)[3] == "0" },
                "every lane acknowledged to its end: \(table)")
        #expect(try runBackorder(["groups", "show", "mail", "--tenant", "other", "--data", dir + "/cli"] + clusterOptions).0 != 0, "another tenant has no such group")
    }

    /// A publish the cluster does not answer within `--cluster-retry` stops the server's
    /// appends (`503`, `/readyz` says why); once the node answers again the server goes on
    /// by itself — no restart: it reads what the stream holds (the stalled publish, stored
    /// when the node went on), so resending that event is a duplicate, and new appends work.
    @Test func aServerResumesAppendsOnceTheClusterAnswersAgain() throws {
        let (cluster, dir) = try Self.clusterAndDirectory()
        defer {
            cluster.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let server = try ServeProcessTests.Server.start(data: dir + "/served", output: dir + "/serve",
                                                        store: ["--cluster", cluster.urls, "--replicas", "1", "--cluster-retry", "1"])
        defer { server.stop() }
        let producer = try Connection(port: server.port, timeoutSeconds: 60)
        let customer = Self.event(1, "CustomerRegistered", #""customerId":"C-1","number":"1","name":"Berg""#) + "\n"
        let product = Self.event(2, "ProductRegistered", #""productId":"P-1","sku":"S-1","name":"Boot","sizes":["42"]"#) + "\n"
        try producer.send("POST", "/v1/tenants/acme/events", body: customer)
        #expect(try producer.response().status == 201)

        try cluster.signal(node: 1, SIGSTOP)
        var stopped = true
        defer { if stopped { try? cluster.signal(node: 1, SIGCONT) } }
        try producer.send("POST", "/v1/tenants/acme/events", body: product)
        let refused = try producer.response()
        #expect(refused.status == 503, "\(refused.status) \(refused.body)")
        // The next append is refused at once: appends are stopped, to be tried again shortly.
        try producer.send("POST", "/v1/tenants/acme/events", body: Self.event(4, "CustomerRegistered", #""customerId":"C-3","number":"3","name":"Ek""#) + "\n")
        let stoppedAnswer = try producer.response()
        #expect(stoppedAnswer.status == 503 && stoppedAnswer.body.contains("cannot append for now"), "\(stoppedAnswer.status) \(stoppedAnswer.body)")
        let probe = try Connection(port: server.port, timeoutSeconds: 10)
        try probe.send("GET", "/readyz")
        let notReady = try probe.response()
        #expect(notReady.status == 503 && notReady.body.contains("appends stopped"), "\(notReady.body)")

        try cluster.signal(node: 1, SIGCONT)
        stopped = false
        // The server's own answer says when it goes on (bounded: a poll of its state, no sleep).
        let deadline = ContinuousClock.now + .seconds(30)
        var ready = 0
        while ready != 200 && ContinuousClock.now < deadline {
            try probe.send("GET", "/readyz")
            ready = try probe.response().status
        }
        #expect(ready == 200, "appends resumed without a restart")
        try producer.send("POST", "/v1/tenants/acme/events", body: product)
        let resent = try producer.response()
        #expect(resent.status == 200 && resent.body.contains("\"duplicates\":1"), "the stalled event was stored when the node went on: \(resent.body)")
        try producer.send("POST", "/v1/tenants/acme/events", body: Self.event(3, "CustomerRegistered", #""customerId":"C-2","number":"2","name":"Lund""#) + "\n")
        #expect(try producer.response().status == 201)
        let log = (try? String(contentsOfFile: dir + "/serve.stderr", encoding: .utf8)) ?? ""
        #expect(log.contains("appends resumed"), "the server's log says so")
    }

    /// A cluster that stops answering (its node SIGSTOPped: connections open, no replies)
    /// holds up the routes that need it, not the others: their handlers wait on the
    /// server's blocking-call pool, not on Swift's cooperative threads (two on this
    /// machine), so `/metrics` and `/healthz` still answer; when the node resumes, the
    /// waiting requests are answered too.
    @Test func aStalledClusterHoldsUpOnlyTheRoutesThatNeedIt() throws {
        let (cluster, dir) = try Self.clusterAndDirectory()
        defer {
            cluster.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let server = try ServeProcessTests.Server.start(data: dir + "/served", output: dir + "/serve", store: ["--cluster", cluster.urls, "--replicas", "1"])
        defer { server.stop() }
        let producer = try Connection(port: server.port)
        try producer.send("POST", "/v1/tenants/acme/events", body: Self.event(1, "CustomerRegistered", #""customerId":"C-1","number":"1","name":"Berg""#) + "\n")
        #expect(try producer.response().status == 201)

        try cluster.signal(node: 1, SIGSTOP)
        var resumed = false
        defer { if !resumed { try? cluster.signal(node: 1, SIGCONT) } }
        // Six new members of a consumer group: each joins through the cluster's group bucket.
        let stalled = 6
        let waiting = try (0..<stalled).map { _ in
            let connection = try Connection(port: server.port, timeoutSeconds: 120)
            try connection.send("POST", "/v1/tenants/acme/groups/mail/fetch?wait=0")
            return connection
        }
        // The server's own count says when all six are in their routes (plus this request).
        let monitor = try Connection(port: server.port, timeoutSeconds: 10)
        let deadline = ContinuousClock.now + .seconds(20)
        var inFlight = 0
        while inFlight < stalled + 1 && ContinuousClock.now < deadline {
            try monitor.send("GET", "/metrics")
            let metrics = try monitor.response()
            try #require(metrics.status == 200, "\(metrics.body)")
            inFlight = metrics.body.firstMatch(of: /backorder_http_requests_in_flight_requests ([0-9.]+)/).flatMap { Double($0.1) }.map { Int($0) } ?? 0
        }
        #expect(inFlight >= stalled + 1, "the six fetches never reached their route")
        let asked = ContinuousClock.now
        try monitor.send("GET", "/healthz")
        #expect(try monitor.response().status == 200)
        #expect(ContinuousClock.now - asked < .seconds(2), "healthz answered while the cluster is stalled")

        try cluster.signal(node: 1, SIGCONT)
        resumed = true
        for connection in waiting {
            let answer = try connection.response()
            #expect(answer.status == 200, "a fetch held up by the stalled cluster is answered once it resumes: \(answer.body)")
        }
    }
}
