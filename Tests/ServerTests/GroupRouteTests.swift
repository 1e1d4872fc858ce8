@testable import BackorderServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Consumer groups over HTTP: a tenant's events delivered in batches with checkpoints,
/// failures retried then parked, members let go when idle and their batch delivered again,
/// long polls woken by appends.
@Suite(.serialized) struct GroupRouteTests {
    typealias Fixture = RouteTests.Fixture

    func auth(_ token: String?) -> HTTPFields {
        var fields: HTTPFields = [:]
        if let token { fields[.authorization] = "Bearer " + token }
        return fields
    }

    /// POSTs and returns the status and the JSON object answered (empty when none).
    func call(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, token: String?, body: String = "") async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: uri, method: method, headers: auth(token), body: ByteBuffer(string: body)) { response in
            let object = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any]
            return (response.status, object ?? [:])
        }
    }

    func settle(_ object: [String: Any], reason: String? = nil) throws -> String {
        var body: [String: Any] = ["member": try #require(object["member"] as? String), "delivery": try #require(object["delivery"] as? String)]
        if let reason { body["reason"] = reason }
        return String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    static func line(_ customer: String) -> String {
        #"{"type":"CustomerRegistered","actor":"test","data":{"customerId":"\#(customer)","number":"\#(customer)","name":"Name \#(customer)"}}"# + "\n"
    }

    @Test func aTenantsEventsAreDeliveredOnceAcknowledgedAndFailuresParked() async throws {
        // Members are not let go while idle here (a loaded machine may take minutes over
        // this test); the other test checks the expiry.
        let fixture = try await Fixture.make { $0.memberIdleSeconds = 3_600 }
        let input = RouteTests.input(events: 1_500)
        try await fixture.app.test(.router) { client in
            let t001 = fixture.token["t001"]!, reader = fixture.token["consumer"]!
            for tenant in ["t001", "t002"] {
                #expect(try await call(client, .post, "/v1/tenants/\(tenant)/events", token: fixture.token[tenant], body: input[tenant]!).0 == .created)
            }
            let expected = input["t001"]!.split(separator: "\n").count
            // Join, then fetch and acknowledge until nothing is left: every t001 event once,
            // no t002 event, in offset order per lane.
            var member: String?
            var ids: [String] = [], lastOffset: [Int: Int64] = [:]
            while true {
                let query = member.map { "member=\($0)" } ?? "max=200"
                let (status, batch) = try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?\(query)", token: reader)
                #expect(status == .ok, "\(batch)")
                member = try #require(batch["member"] as? String)
                guard batch["delivery"] is String else { break }
                let events = try #require(batch["events"] as? [[String: Any]])
                #expect(events.count <= 200 && !events.isEmpty)
                for event in events {
                    #expect(event["tenant"] as? String == "t001")
                    ids.append(try #require(event["id"] as? String))
                }
                let lane = try #require(batch["lane"] as? Int), first = try #require(batch["first"] as? Int64)
                // A batch starts at its lane's checkpoint (past other tenants' events, settled
                // without a delivery).
                #expect(first >= (lastOffset[lane] ?? 0), "lane \(lane) goes on from its checkpoint")
                let (acked, answer) = try await call(client, .post, "/v1/tenants/t001/groups/billing/ack", token: reader, body: try settle(batch))
                #expect(acked == .ok && answer["acknowledged"] as? Int == events.count)
                lastOffset[lane] = try #require(answer["checkpoint"] as? Int64)
                // The same batch again: not in flight any more.
                #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/ack", token: reader, body: try settle(batch)).0 == .conflict)
            }
            #expect(ids.count == expected && Set(ids).count == expected, "\(ids.count) delivered of \(expected)")

            // A failing event: delivered again with backoff, then parked after maxDeliver,
            // and the lane goes on. The first member leaves so that a new one (maxDeliver 2)
            // takes the lanes.
            #expect(try await call(client, .delete, "/v1/tenants/t001/groups/billing/members/\(member!)", token: reader).0 == .noContent)
            #expect(try await call(client, .post, "/v1/tenants/t001/events", token: t001, body: Self.line("C-POISON")).0 == .created)
            let (_, first) = try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?maxDeliver=2", token: reader)
            #expect(first["attempt"] as? Int == 1 && (first["events"] as? [Any])?.count == 1, "\(first)")
            let (_, retry) = try await call(client, .post, "/v1/tenants/t001/groups/billing/nack", token: reader, body: try settle(first, reason: "cannot bill"))
            #expect(retry["retryAfterMilliseconds"] as? Int == 100)
            let again = try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?member=\(first["member"]!)&wait=5", token: reader).1
            #expect(again["attempt"] as? Int == 2 && again["first"] as? Int64 == first["first"] as? Int64)
            let (_, parked) = try await call(client, .post, "/v1/tenants/t001/groups/billing/nack", token: reader, body: try settle(again, reason: "cannot bill"))
            #expect(parked["parked"] as? [Int64] == [try #require(first["first"] as? Int64)])
            let (statusCode, status) = try await call(client, .get, "/v1/tenants/t001/groups/billing", token: fixture.token["reader"])
            #expect(statusCode == .ok)
            let lanes = try #require(status["lanes"] as? [[String: Any]])
            #expect(lanes.count == 4 && lanes.allSatisfy { $0["lag"] as? Int == 0 }, "\(lanes)")
            #expect(lanes.flatMap { ($0["parked"] as? [[String: Any]]) ?? [] }.map { $0["reason"] as? String } == ["cannot bill"])
            #expect(lanes.map { $0["parkedCount"] as? Int ?? -1 }.reduce(0, +) == 1)

            // Bad requests name what is wrong; another tenant's group is not this one's.
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/a%2Fb/fetch", token: reader).0 == .badRequest)
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?wait=99", token: reader).0 == .badRequest)
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?member=nobody", token: reader).0 == .notFound)
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?max=1.5", token: reader).0 == .badRequest)
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch?member=\(first["member"]!)&max=5", token: reader).0 == .badRequest)
            // Reading is not consuming: a read-only token sees the status, may not move checkpoints.
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/fetch", token: fixture.token["reader"]).0 == .forbidden)
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/billing/ack", token: reader, body: "{}").0 == .badRequest)
            #expect(try await call(client, .get, "/v1/tenants/t002/groups/billing", token: fixture.token["t002"]).0 == .notFound)

            // A tenant holds at most 64 members (each holds open files): with the one above
            // still there, the 64th join of another group is refused.
            for _ in 1..<64 { #expect(try await call(client, .post, "/v1/tenants/t001/groups/many/fetch", token: reader).0 == .ok) }
            let (refused, problem) = try await call(client, .post, "/v1/tenants/t001/groups/many/fetch", token: reader)
            #expect(refused == .serviceUnavailable && (problem["detail"] as? String ?? "").contains("64 members"), "\(problem)")
            // Another tenant is not held back by this one's members.
            #expect(try await call(client, .post, "/v1/tenants/t002/groups/many/fetch", token: fixture.token["admin"]).0 == .ok)
        }
        try await fixture.close()
    }

    @Test func aLongPollIsWokenByAnAppendAndAnIdleMembersBatchGoesToAnother() async throws {
        // Members idle for an hour are let go; the test moves the clock past that itself
        // (a real idle time of a second failed on a loaded CI machine between two calls).
        let fixture = try await Fixture.make { $0.memberIdleSeconds = 3_600 }
        try await fixture.app.test(.router) { client in
            let t001 = fixture.token["t001"]!, consumer = fixture.token["consumer"]!
            // Nothing yet: a long poll answers when the append comes, not at its end.
            let began = ContinuousClock.now
            let idleWaiters = fixture.served.appended.waiters  // the live feed's
            async let polled = call(client, .post, "/v1/tenants/t001/groups/mail/fetch?wait=20", token: consumer)
            // The append comes once the poll waits for one (the server's own count says so).
            let deadline = ContinuousClock.now + .seconds(20)
            var waiting = false
            while !waiting && ContinuousClock.now < deadline {
                waiting = fixture.served.appended.waiters > idleWaiters
                if !waiting { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(waiting, "the long poll waits for an append")
            #expect(try await call(client, .post, "/v1/tenants/t001/events", token: t001, body: Self.line("C-1")).0 == .created)
            let (status, batch) = try await polled
            #expect(status == .ok && (batch["events"] as? [Any])?.count == 1, "\(batch)")
            #expect(ContinuousClock.now - began < .seconds(15), "woken by the append")
            // That member goes silent with the batch in flight: after its idle time it is let
            // go, and a second member gets the same batch.
            #expect(fixture.served.groups.expireIdle(now: .now + .seconds(3_601)) == 1)
            let (_, second) = try await call(client, .post, "/v1/tenants/t001/groups/mail/fetch?wait=20", token: consumer)
            #expect(second["first"] as? Int64 == batch["first"] as? Int64 && second["lane"] as? Int == batch["lane"] as? Int, "\(second)")
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/mail/fetch?member=\(batch["member"]!)", token: consumer).0 == .notFound)
            // A member of t001 is not reachable through another tenant's route, even with a
            // token that reaches both.
            #expect(try await call(client, .post, "/v1/tenants/t002/groups/mail/fetch?member=\(second["member"]!)", token: fixture.token["admin"]).0 == .notFound)
            // A nack's backoff holds: the batch comes back only after it.
            let nacked = ContinuousClock.now
            let (_, retry) = try await call(client, .post, "/v1/tenants/t001/groups/mail/nack", token: consumer, body: try settle(second))
            #expect(retry["retryAfterMilliseconds"] as? Int == 100)
            var (_, again) = try await call(client, .post, "/v1/tenants/t001/groups/mail/fetch?member=\(second["member"]!)", token: consumer)
            if again["delivery"] is NSNull {
                again = try await call(client, .post, "/v1/tenants/t001/groups/mail/fetch?member=\(second["member"]!)&wait=5", token: consumer).1
            } else {
                #expect(ContinuousClock.now - nacked >= .milliseconds(100), "handed out again before its backoff")
            }
            #expect(again["attempt"] as? Int == 2, "\(again)")
            // With nothing to deliver, a poll ends at its wait with no batch.
            #expect(try await call(client, .post, "/v1/tenants/t001/groups/mail/ack", token: consumer, body: try settle(again)).0 == .ok)
            let (_, empty) = try await call(client, .post, "/v1/tenants/t001/groups/mail/fetch?member=\(second["member"]!)&wait=0.2", token: consumer)
            #expect(empty["delivery"] is NSNull && (empty["events"] as? [Any])?.isEmpty == true, "\(empty)")

        }
        try await fixture.close()
    }
}
