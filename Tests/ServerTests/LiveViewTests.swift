import BackorderServer
import EventStore
import Foundation
import Hummingbird
import HummingbirdTesting
import RecordsView
import Testing

/// The server's records view: every query sees every append acknowledged before it, while
/// publications go from memory (sealed rows) to commits; at close everything is committed.
@Suite(.serialized) struct LiveViewTests {
    @Test func queriesSeeEachAppendAndCloseCommitsEverything() async throws {
        let fixture = try await RouteTests.Fixture.make()
        let directory = fixture.served.options.directory
        let token: HTTPFields = [.authorization: "Bearer " + fixture.token["t001"]!]
        try await fixture.app.test(.router) { client in
            // More appends than publications kept in memory before a commit, each followed
            // by a query that must see it.
            for n in 1...40 {
                let line = #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-\#(n)","number":"\#(n)","name":"Customer \#(n)"}}"#
                try await client.execute(uri: "/v1/tenants/t001/events", method: .post, headers: token, body: ByteBuffer(string: line + "\n")) {
                    #expect($0.status == .created)
                }
                try await client.execute(uri: "/v1/tenants/t001/customers/C-\(n)", method: .get, headers: token) { response in
                    #expect(response.status == .ok, "customer \(n) appended just before")
                }
            }
            #expect((fixture.served.view.latest?.generation ?? 0) >= 40, "a publication per waiting query")
        }
        try await fixture.served.close()
        // Reopened from disk as the CLI does, without catching up: nothing left out.
        let access = try RecordsViewAccess.open(root: directory, source: try await EventReader.open(at: directory), freshness: .staleOK)
        #expect(access.behind == 0, "the view was committed at close")
        let customer = try access.queries(tenant: "t001").customer("C-40")
        #expect(customer.name == "Customer 40")
        try access.close()
        try? FileManager.default.removeItem(atPath: fixture.directory)
    }
}
