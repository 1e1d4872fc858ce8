@testable import BackorderServer
@testable import EventLog
import EventStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport

/// The server beside a request still in flight: its partition's fsync held at a gate, so a
/// later request on another partition settles first.
@Suite struct InFlightRouteTests {
    private static func registration(_ customer: String) -> [UInt8] {
        Array(#"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"\#(customer)","number":"1","name":"N \#(customer)"}}"#.utf8) + [10]
    }

    /// The customer ids of `GET events`' page, and whether it says it reached the end.
    private static func page(_ response: TestResponse) throws -> (customers: [String], end: Bool) {
        let body = try RouteTests.json(response.body)
        let events = try #require(body["events"] as? [[String: Any]])
        let customers = events.compactMap { ($0["data"] as? [String: Any])?["customerId"] as? String }
        return (customers, try #require(body["end"] as? Bool))
    }

    /// The later request's event is acknowledged (its client has its 201), but `GET events`
    /// and the live feed hold it until the earlier request's event settles, then give
    /// both in the order they were recorded. Before, they gave the later one first.
    @Test(.timeLimit(.minutes(2))) func pagedReadsAndTheLiveFeedWaitForAnEarlierRequestInFlight() async throws {
        let heldPartition = "/" + WriteAheadLog.partitionDirectoryName(0) + "/"
        let gate = GatedSyncStorage { $0.hasSuffix(".log") && $0.contains(heldPartition) }
        let fixture = try await RouteTests.Fixture.make {
            $0.storage = gate
            $0.partitions = 2
        }
        defer { gate.open() }  // a failed expectation must not leave the log's writer held
        let served = fixture.served
        guard case let .embedded(store) = served.backend else { throw TestFailure("not the embedded log") }
        let customers = (0..<64).map { "C-\($0)" }
        let early = try #require(customers.first { store.reader.partition(tenant: "t001", stream: "customer/" + $0) == 0 })
        let late = try #require(customers.first { store.reader.partition(tenant: "t001", stream: "customer/" + $0) == 1 })
        let start = try served.recordedOrderSource.endOffsets()
        served.feed.listen()
        defer { served.feed.stopListening() }

        gate.close()
        let first = Task { try await served.append(tenant: "t001", body: Self.registration(early)) }
        await gate.heldSync()
        #expect(try await served.append(tenant: "t001", body: Self.registration(late)).appended == 1)
        let headers: HTTPFields = [.authorization: "Bearer " + fixture.token["reader"]!]
        try await fixture.app.test(.router) { client in
            try await client.execute(uri: "/v1/tenants/t001/events", method: .get, headers: headers) { response in
                let page = try Self.page(response)
                #expect(page.customers.isEmpty, "recorded after an event in flight")
            }
            gate.open()
            #expect(try await first.value.appended == 1)
            try await client.execute(uri: "/v1/tenants/t001/events", method: .get, headers: headers) { response in
                let page = try Self.page(response)
                #expect(page.customers == [early, late] && page.end)
            }
        }
        // The feed's messages, once it has read both, in the same order.
        var rings = served.feed.ring.rings
        let deadline = ContinuousClock.now + .seconds(60)
        while served.feed.head != [1, 1] && ContinuousClock.now < deadline {
            rings = await served.feed.ring.wait(after: rings, timeout: 1)
        }
        let messages = try #require(served.feed.messages(after: start))
        let order = messages.map { message in [early, late].first { String(decoding: message.bytes, as: UTF8.self).contains("\"\($0)\"") } }
        #expect(order == [early, late])
        try await fixture.close()
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
