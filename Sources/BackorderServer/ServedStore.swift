import EventLog
import EventStore
import Foundation
import JetStreamStore
import OutOfStock
import RecordsView

/// What `backorder serve` is told.
public struct ServeOptions: Sendable {
    /// The data directory (the log and the views; on a cluster, the views and the id cache).
    public var directory: String
    /// The cluster store to serve instead of the embedded log in `directory`.
    public var cluster: ClusterOptions?
    /// How often a server on a cluster asks for the stream's end, to find events other
    /// processes appended (the embedded log has no other writer).
    public var clusterPollInterval = 0.05
    /// Where to listen; loopback unless told otherwise.
    public var host = "127.0.0.1"
    public var port = 8080
    /// The tokens file (`backorder token create`); nil only with `insecureNoAuth`.
    public var tokensPath: String?
    /// Serve without tokens: refused unless `host` is a loopback address.
    public var insecureNoAuth = false
    /// Largest request body accepted (413 above it).
    public var maxBodyBytes = 16 << 20
    /// Most events in one append request (413 above it); each request is one atomic append,
    /// so it may not exceed the store's batch limit.
    public var maxEventsPerRequest = 10_000
    /// Each token's sustained requests per second, and its burst (429 beyond them).
    public var requestsPerSecond = 5_000.0
    public var burst = 10_000.0
    /// How long a query waits for the view to apply the events acknowledged before it.
    public var queryTimeout = 10.0
    /// How often the view publishes what it applied while appends go on.
    public var publishInterval = 0.05
    /// Seconds between heartbeats on a live stream.
    public var heartbeatSeconds = 15.0
    /// Bytes of the newest events' live messages kept for every live stream (`LiveFeed`);
    /// a stream behind them reads the log itself.
    public var liveFeedBytes = 8 << 20
    /// Syncing of the log; fsync: an acknowledged append is on disk.
    public var durability: Durability = .fsync
    /// Partitions of a new store.
    public var partitions = 8
    /// Seconds after which a consumer-group member not heard from is let go (its batch in
    /// flight is delivered again).
    public var memberIdleSeconds = 30.0
    /// How far ahead of this machine's clock a line's `at` may be (µs); nil: any.
    public var maxClockSkew: Int64? = 3_600_000_000
    /// Streams' states kept for the next requests on the embedded log (`StreamStateCache`;
    /// about 200 bytes each, at most about 3 KB: a product of 20 sizes and long names).
    public var streamStateCacheEntries = 20_000
    /// Where the embedded log, its index, the views and the consumer groups' files are
    /// written: the real file system, or a test's (a fault simulator, a gate on fsyncs).
    public var storage: any Storage = PosixStorage()

    public init(directory: String) { self.directory = directory }

    /// Whether `host` names this machine only.
    public var listensOnLoopbackOnly: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) }
}

/// The one open store a server shares among its requests: the log (as its only writer) or
/// a cluster's stream, the records view kept current beside it (`LiveView`), and the
/// signal that wakes live readers when events are appended.
public final class ServedStore: Sendable {
    public let backend: ServedBackend
    /// The events, as the view and the live streams read them.
    public var source: any EventSource { backend.source }
    /// The events as the live streams and paged reads deliver them, in recorded order
    /// (`ServedBackend.recordedOrderSource`).
    var recordedOrderSource: any EventSource { backend.recordedOrderSource }
    public let view: LiveView
    public let options: ServeOptions
    /// Rings after every acknowledged append.
    let appended = AppendSignal()
    /// Streams' states as the last appends left them, for the next requests' validation.
    let streamStates: StreamStateCache
    /// Dashboards computed recently, per published view.
    let dashboards = DashboardCache()
    /// Tells this process's publications from an earlier one's in `ETag`s.
    let epoch = UInt32.random(in: 1...UInt32.max)
    let metrics: ServerMetrics
    /// Consumer-group members held for HTTP clients.
    let groups: GroupSessions
    /// Lets idle members go, once a second.
    private let expiry: Task<Void, Never>
    /// The newest events' live messages, made once for every live stream.
    let feed: LiveFeed
    /// Follows the log for `feed`.
    private let feeding: Task<Void, Never>
    /// Finds other processes' appends to a cluster store.
    private let watch: EndWatch?

    private init(backend: ServedBackend, view: LiveView, options: ServeOptions, metrics: ServerMetrics, feedFrom ends: [Int64],
                 onFeedFailure: @escaping @Sendable (any Error) -> Void, onWatchFailure: @escaping @Sendable (any Error) -> Void,
                 onAppendsResumed: @escaping @Sendable () -> Void) throws {
        let appended = self.appended
        if case let .cluster(store) = backend {
            watch = try EndWatch(store: store, from: ends, interval: options.clusterPollInterval, onFailure: onWatchFailure, resumed: onAppendsResumed) {
                view.poke()
                appended.ring()
            }
        } else {
            watch = nil
        }
        self.backend = backend
        self.view = view
        self.options = options
        streamStates = StreamStateCache(capacity: options.streamStateCacheEntries)
        self.metrics = metrics
        let home: GroupSessions.Home
        switch backend {
        case .embedded: home = .files(dataDirectory: options.directory)
        case let .cluster(store): home = .cluster(store)
        }
        let groups = GroupSessions(home: home, source: backend.groupSource, idleSeconds: options.memberIdleSeconds,
                                   openFiles: Self.raiseOpenFileLimit(), storage: options.storage)
        self.groups = groups
        expiry = Task.detached {
            while (try? await Task.sleep(for: .seconds(1))) != nil { groups.expireIdle() }
        }
        let reader = backend.recordedOrderSource, heartbeat = options.heartbeatSeconds
        let feed = LiveFeed(at: ends, capacityBytes: options.liveFeedBytes)
        self.feed = feed
        // On a cluster the feed's reads wait for the network: off the cooperative pool.
        feeding = Task.detached(executorPreference: backend.blockingCallPool) {
            if let failure = await feed.run(source: reader, appended: appended, heartbeatSeconds: heartbeat) {
                onFeedFailure(failure)
            }
        }
    }

    /// Opens the store (recovering it as `append` does) and starts the view's thread.
    /// `onViewFailure` hears each failure of the records view and when it is tried again
    /// (seconds), `onFeedFailure`
    /// why the live streams' shared feed stopped, `onWatchFailure` why looking for a
    /// cluster's new events failed (once per run of failures; it is tried again), and
    /// `onAppendsResumed` that a cluster writer's appends, stopped by a failed publish, go
    /// on again — for the server's log.
    public static func open(_ options: ServeOptions, metrics: ServerMetrics = ServerMetrics(),
                            onViewFailure: @escaping @Sendable (_ error: any Error, _ retryIn: Double) -> Void = { _, _ in },
                            onFeedFailure: @escaping @Sendable (any Error) -> Void = { _ in },
                            onWatchFailure: @escaping @Sendable (any Error) -> Void = { _ in },
                            onAppendsResumed: @escaping @Sendable () -> Void = {}) async throws -> ServedStore {
        precondition(options.maxEventsPerRequest <= StoreOptions().maxEventsPerBatch, "one request must be one atomic append")
        let backend = try await ServedBackend.open(options)
        let ends: [Int64], view: LiveView
        do {
            ends = try backend.recordedOrderSource.endOffsets()
            view = try LiveView(root: options.directory, source: backend.source, publishInterval: options.publishInterval,
                                storage: options.storage, onFailure: onViewFailure)
        } catch {
            try? await backend.close()
            throw error
        }
        do {
            return try ServedStore(backend: backend, view: view, options: options, metrics: metrics, feedFrom: ends, onFeedFailure: onFeedFailure,
                                   onWatchFailure: onWatchFailure, onAppendsResumed: onAppendsResumed)
        } catch {
            try? view.close()
            try? await backend.close()
            throw error
        }
    }

    /// Raises this process's soft limit of open files to its hard limit (a server holds a
    /// descriptor per connection, per live stream's reader and per group member); the
    /// limit now.
    static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(min(limit.rlim_cur, 1 << 20))
    }

    /// Where the routes that use a cluster store run (`ServedBackend.blockingCallPool`).
    var blockingCallPool: BlockingCallPool? { backend.blockingCallPool }

    /// The log's ends without waiting for a network: the embedded log's, or a cluster
    /// stream's as the end watch last saw it (nil if the embedded log cannot say).
    func endsWithoutWaiting() -> [Int64]? {
        if let watch { return watch.lastEnds }
        return try? source.endOffsets()
    }

    /// What the store says at open (recovery, index rebuilds), for the log.
    public var openingNotes: [String] { backend.openingNotes }

    /// Appends an NDJSON body for `tenant`: the input contract and the domain's rules, all
    /// or nothing. A conflict with another request appending to the same stream at the
    /// same moment is retried (the lines are decided again against the new state).
    func append(tenant: String, body: [UInt8], stream: String? = nil, expectVersion: Int64? = nil) async throws -> IngestReport {
        var options = IngestOptions()
        options.tenant = tenant
        options.stream = stream
        options.expectVersion = expectVersion
        options.batchSize = self.options.maxEventsPerRequest
        // A cluster store cannot say a stream's version without reading it: no entry could
        // be checked, so none is kept.
        if case .embedded = backend { options.sharedStates = streamStates }
        options.maxClockSkew = self.options.maxClockSkew
        options.maxReportedErrors = 100
        var attempt = 0
        while true {
            attempt += 1
            var reader = LineReader(bytes: body, name: "the request body")
            let lookup = view.latest.map { ViewStateLookup(snapshot: $0.snapshot) }
            do {
                let report = try await Ingestor(store: backend.appender, options: options, lookup: lookup).ingest(&reader)
                if report.appended > 0 {
                    view.poke()
                    appended.ring()
                }
                return report
            } catch let failure as IngestFailure {
                guard failure.report.appended == 0, case .wrongExpectedVersion? = failure.underlying as? EventStoreError, attempt < 5 else { throw failure }
                await retryAfterConflict()
            } catch EventStoreError.wrongExpectedVersion where attempt < 5 {
                // Said while deciding (nothing appended): a stream had another request's
                // events in flight (`Ingestor.state`).
                await retryAfterConflict()
            }
        }
    }

    /// Before deciding an append again: the other request's events are read back only once
    /// settled, and deciding at once met the same conflict five times within its fsync.
    private func retryAfterConflict() async {
        metrics.appendRetries.increment()
        await backend.appender.awaitSettled(timeout: .milliseconds(200))
    }

    /// The view to answer from: current with every event acknowledged before the call (or,
    /// with `staleOK`, as last published).
    func published(staleOK: Bool) async throws -> LiveView.Published {
        if staleOK, let latest = view.latest { return latest }
        return try await view.snapshot(covering: try source.endOffsets(), timeout: options.queryTimeout)
    }

    /// `tenant`'s dashboard as JSON (the CLI's `--json`), from `DashboardCache` when the
    /// same one was computed on the same published view within the last second.
    /// `explicitNow`: the request named its `now` (cached under it, exact).
    func dashboardJSON(tenant: String, on published: LiveView.Published, range: TimeRange, now: Int64, explicitNow: Bool) throws -> TaggedJSON {
        let key = DashboardCache.Key(tenant: tenant, from: range.from, to: range.to, now: explicitNow ? now : nil)
        if let cached = dashboards.answer(key, generation: published.generation) { return cached }
        let answer = TaggedJSON(try TenantRoutes.sortedJSON(RecordsQueries(snapshot: published.snapshot, tenant: tenant).dashboard(range: range, now: now)))
        dashboards.keep(answer, for: key, generation: published.generation)
        return answer
    }

    /// Applies and commits what the view has not, closes it and the log.
    public func close() async throws {
        watch?.stop()
        expiry.cancel()
        feeding.cancel()
        appended.ring()  // the feed waits on it
        await feeding.value
        groups.close()
        var failure: (any Error)?
        do { try view.close() } catch { failure = error }
        do { try await backend.close() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}
