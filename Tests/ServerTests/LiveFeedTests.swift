import EventStore
import Foundation
import Testing
@testable import BackorderServer

/// The live streams' shared feed: boundaries, its bound, and the claim a stream behind it
/// relies on — reading the log up to the feed's head ends exactly on a boundary.
@Suite(.serialized) struct LiveFeedTests {
    static func message(_ after: [Int64], bytes: Int = 10) -> LiveFeed.Message {
        LiveFeed.Message(tenant: "t", after: after, bytes: Array(repeating: 65, count: bytes))
    }

    @Test func aStreamOnABoundaryTakesTheMessagesAfterItAndTheOldestGoBeyondTheBound() {
        let feed = LiveFeed(at: [0, 0])
        feed.add([Self.message([1, 0]), Self.message([1, 1]), Self.message([2, 1])])
        #expect(feed.head == [2, 1])
        #expect(feed.messages(after: [0, 0])?.map(\.after) == [[1, 0], [1, 1], [2, 1]])
        #expect(feed.messages(after: [1, 1])?.map(\.after) == [[2, 1]])
        #expect(feed.messages(after: [2, 1])?.isEmpty == true, "at the head: nothing yet, but on the feed")
        #expect(feed.messages(after: [0, 1]) == nil, "not a boundary: the stream reads the log")

        // 1,000 bytes at most: 100 messages of 100 bytes keep the newest 7–10.
        let bounded = LiveFeed(at: [0], capacityBytes: 1_000)
        for n in 1...100 { bounded.add([Self.message([Int64(n)], bytes: 100)]) }
        let kept = (0...100).filter { bounded.messages(after: [Int64($0)]) != nil }  // the boundaries left
        #expect((8...11).contains(kept.count) && kept.last == 100, "boundaries kept: \(kept)")
        #expect(bounded.messages(after: [0]) == nil && bounded.messages(after: [50]) == nil, "dropped")
        let oldest = kept[0]
        #expect(bounded.messages(after: [Int64(oldest)])?.count == 100 - oldest)
    }

    /// Waits (up to 60 s) until the feed's head is at `ends`, woken by its ring.
    private func waitForHead(of feed: LiveFeed, at ends: [Int64]) async throws {
        var rings = feed.ring.rings
        let deadline = ContinuousClock.now + .seconds(60)
        while feed.head != ends && ContinuousClock.now < deadline {
            try #require(feed.head != nil, "the feed stopped")
            rings = await feed.ring.wait(after: rings, timeout: 1)
        }
    }

    /// `listening`: whether a live stream reads the feed (else it writes no messages and
    /// only moves its head).
    @Test(arguments: [true, false])
    func theFeedFollowsAppendsAndTheLogReadUpToItsHeadEndsOnABoundary(listening: Bool) async throws {
        for capacity in [8 << 20, 4_096] {
            let fixture = try await RouteTests.Fixture.make { $0.liveFeedBytes = capacity }
            do {
                let served = fixture.served
                if listening { served.feed.listen() }
                defer { if listening { served.feed.stopListening() } }
                let start = try served.source.endOffsets()
                let body = try #require(RouteTests.input(events: 2_000)["t001"])
                let report = try await served.append(tenant: "t001", body: Array(body.utf8))
                let ends = try served.source.endOffsets()
                #expect(report.appended > 500 && ends.reduce(0, +) == Int64(report.appended))
                // The feed reads what was appended (woken by the append's ring).
                try await waitForHead(of: served.feed, at: ends)
                #expect(served.feed.head == ends)
                if !listening {
                    #expect(served.feed.messages(after: start) == nil, "no messages nobody reads")
                } else if capacity > 1 << 20 {
                    let messages = try #require(served.feed.messages(after: start))
                    #expect(messages.count == report.appended && messages.last?.after == ends)
                    #expect(messages.allSatisfy { $0.tenant == "t001" && String(decoding: $0.bytes, as: UTF8.self).hasPrefix("id: ") })
                } else {
                    #expect(served.feed.messages(after: start) == nil, "4 KiB keep only the newest")
                }
                // A stream from the start reads the log up to the head and lands on it.
                var reader = try RecordedOrderReader(source: served.source, from: start, to: ends)
                var read = 0
                while try reader.next() != nil { read += 1 }
                #expect(read == report.appended && reader.positions == ends)
                #expect(served.feed.messages(after: reader.positions)?.isEmpty == true)
                if !listening {
                    // A stream that comes now stands on the head, and takes the next append's
                    // messages from the feed.
                    served.feed.listen()
                    defer { served.feed.stopListening() }
                    let more = (1...3).map { #"{"type":"CustomerRegistered","actor":"u1","data":{"customerId":"C-late-\#($0)","number":"\#($0)","name":"Late \#($0)"}}"# + "\n" }.joined()
                    let next = try await served.append(tenant: "t001", body: Array(more.utf8))
                    try await waitForHead(of: served.feed, at: try served.source.endOffsets())
                    #expect(next.appended == 3 && served.feed.messages(after: ends)?.count == 3)
                }
            }
            try await fixture.close()
        }
    }
}
