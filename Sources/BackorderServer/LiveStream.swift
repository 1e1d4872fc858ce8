import EventLog
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import OutOfStock
import RecordsView
import ServiceLifecycle

/// `GET /v1/tenants/{tenant}/live`: Server-Sent Events. Each new event of the tenant is an
/// `event` message whose `id:` is the resume point after it (one offset per lane, as a page
/// of `GET events` gives), so a client that reconnects with `Last-Event-ID` (or `?from=`)
/// misses nothing and sees nothing twice; after events, a `dashboard` message carries the
/// tenant's dashboard as it now is. A comment line every `heartbeatSeconds` keeps proxies
/// from closing an idle stream.
///
/// Streams take the newest events' messages from the server's `LiveFeed`, made once for
/// all of them; a stream behind the feed reads the log itself from where its client is, so
/// a slow client falls behind in the log, not in the server's memory (the feed's bounded
/// messages, one batch per lane and one write buffer).
struct LiveStream: Sendable {
    let served: ServedStore
    /// Bytes gathered before a write to the client.
    static let writeBytes = 64 << 10

    @Sendable func respond(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.read)
        let source = served.recordedOrderSource
        let ends = try source.endOffsets()
        let resume = request.headers[lastEventID] ?? request.uri.queryParameters["from"].map(String.init)
        // Without a resume point, from the feed's head: where a stream takes the feed's
        // messages at once (it is at most the log's end).
        let start = try resume.map { try TenantRoutes.positions($0, lanes: ends.count) } ?? served.feed.head ?? ends
        let served = self.served
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            served.metrics.liveSubscribers.increment()
            served.feed.listen()
            defer {
                served.feed.stopListening()
                served.metrics.liveSubscribers.decrement()
            }
            let stop = StopFlag()
            try await withGracefulShutdownHandler {
                // The response body is written after the route's middleware returned: its
                // reads of a cluster store go to the blocking-call pool here.
                try await withTaskExecutorPreference(served.blockingCallPool) {
                    try await Self.stream(served, tenant: tenant, source: source, from: zip(start, ends).map { min($0, $1) }, stop: stop, to: &writer)
                }
            } onGracefulShutdown: {
                stop.set()
                served.appended.ring()
                served.feed.ring.ring()  // streams on the feed wait on it
            }
            try await writer.finish(nil)
        })
    }

    private static func stream(_ served: ServedStore, tenant: String, source: any EventSource, from: [Int64], stop: StopFlag,
                               to writer: inout any ResponseBodyWriter) async throws {
        let feed = served.feed
        var positions = from
        var out: [UInt8] = Array("retry: 1000\n\n".utf8)
        try await writer.write(ByteBuffer(bytes: out))
        while !stop.isSet {
            // The ring counts first: a message added (or an append acknowledged) between
            // them and the reads below is then both read now and rung again — never past
            // the reads with its ring already counted (the stream would wait for the next).
            let feedRings = feed.ring.rings, appendRings = served.appended.rings
            out.removeAll(keepingCapacity: true)
            var sent = 0
            if !feed.isBoundary(positions) {
                // Not on the feed: the log itself, up to the feed's head (a boundary), or to
                // the log's end once the feed has stopped.
                var reader = try RecordedOrderReader(source: source, from: positions, to: try feed.head ?? source.endOffsets())
                var scanned = 0
                while let event = try reader.next() {
                    // Other tenants' events are read past; a long stretch of them yields the
                    // thread now and then instead of holding it.
                    scanned += 1
                    if scanned % 4_096 == 0 { await Task.yield() }
                    guard event.tenant == tenant else { continue }
                    try LiveFeed.appendMessage(event, after: reader.positions, to: &out)
                    sent += 1
                    if out.count >= writeBytes {
                        try await writer.write(ByteBuffer(bytes: out))
                        out.removeAll(keepingCapacity: true)
                    }
                }
                positions = reader.positions
            }
            for message in feed.messages(after: positions) ?? [] {
                positions = message.after
                guard message.tenant == tenant else { continue }
                out += message.bytes
                sent += 1
                if out.count >= writeBytes {
                    try await writer.write(ByteBuffer(bytes: out))
                    out.removeAll(keepingCapacity: true)
                }
            }
            if sent > 0 {
                // The dashboard as of these events (the view publishes them within its
                // interval; a view that cannot is left out, not waited for).
                // Subscribers of one tenant share one computation per publication.
                if let published = try? await served.view.snapshot(covering: positions, timeout: served.options.queryTimeout),
                   let dashboard = try? served.dashboardJSON(tenant: tenant, on: published, range: TimeRange(), now: EventStore.wallClockMicroseconds(), explicitNow: false) {
                    out += Array("event: dashboard\ndata: ".utf8)
                    out.append(contentsOf: dashboard.bytes[..<max(0, dashboard.bytes.count - 1)])  // without its newline (no copy)
                    out += [10, 10]
                }
            }
            if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
            // Woken by the feed's next messages (or by an append once it has stopped), or by
            // the heartbeat's time.
            let rung = feed.head != nil
                ? await feed.ring.wait(after: feedRings, timeout: served.options.heartbeatSeconds) != feedRings
                : await served.appended.wait(after: appendRings, timeout: served.options.heartbeatSeconds) != appendRings
            if !rung && !stop.isSet { try await writer.write(ByteBuffer(string: ": heartbeat\n\n")) }
        }
    }
}

/// The header a reconnecting client resumes with.
private let lastEventID = HTTPField.Name("Last-Event-ID")!

/// Set once, read from any task.
final class StopFlag: Sendable {
    private let flag = ConditionLock(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}
