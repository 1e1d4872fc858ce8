import EventStore
import Foundation
import Hummingbird
import Logging

/// `backorder serve`: one open store, its live records view and every route, on
/// Hummingbird (docs/SERVER.md).
public enum BackorderServer {
    /// The router of a served store: the tenant routes, `/healthz`, `/readyz`, `/metrics`,
    /// and the web dashboard (`/`, `/t/{tenant}`).
    public static func router(_ served: ServedStore, tokens: TokenRegistry?) -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: AccessMiddleware(tokens: tokens, limiter: RateLimiter(rate: served.options.requestsPerSecond, burst: served.options.burst),
                                                metrics: served.metrics, bodyLimit: served.options.maxBodyBytes))
        router.get("healthz") { _, _ in TenantRoutes.json(Array("{\"status\":\"ok\"}\n".utf8)) }
        router.get("readyz") { _, _ in
            if served.backend.appendFailure != nil {
                var problem = Problem(.serviceUnavailable, "appends stopped after a publish to the cluster failed (the server's log says why); they resume by themselves once the cluster answers again")
                problem.headers[.retryAfter] = "1"
                throw problem
            }
            let failures = served.view.failures
            if failures > 0 || served.view.latest == nil {
                let (applied, backlog, reason) = served.view.progress
                let error = failures > 0 ? LiveViewError.failing(failures: failures) : .notCaughtUp(applied: applied, backlog: backlog, rebuilding: reason != nil)
                var problem = Problem(.serviceUnavailable, "\(error)")
                problem.headers[.retryAfter] = "1"
                throw problem
            }
            return TenantRoutes.json(Array("{\"status\":\"ready\"}\n".utf8))
        }
        router.get("metrics") { _, context in
            if context.authenticated {
                guard let token = context.token else { throw Problem(.unauthorized, "this route needs a bearer token with the admin role") }
                guard token.allows(.admin) else { throw Problem(.forbidden, "token \(token.id) lacks the admin role") }
            }
            if let published = served.view.latest, let ends = served.endsWithoutWaiting() {
                served.metrics.viewLagEvents.set(Double(zip(ends, published.positions).reduce(Int64(0)) { $0 + max(0, $1.0 - $1.1) }))
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: served.metrics.render())))
        }
        TenantRoutes(served: served).add(to: router)
        GroupRoutes(served: served).add(to: router)
        WebRoutes.add(to: router)
        return router
    }

    /// Opens the store, serves until SIGTERM or SIGINT, then drains: stops accepting,
    /// finishes the requests in flight (an acknowledged append is durable), ends live
    /// streams, commits the view and closes the store. `onReady` gets the port listened on.
    public static func run(_ options: ServeOptions, logger: Logger = Logger(label: "backorder.serve"),
                           onReady: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let tokens: TokenRegistry?
        if options.insecureNoAuth {
            guard options.listensOnLoopbackOnly else {
                throw ServeError.refused("--insecure-no-auth serves without tokens and is allowed on a loopback address only (127.0.0.1, ::1), not \(options.host)")
            }
            tokens = nil
        } else {
            guard let path = options.tokensPath else {
                throw ServeError.refused("give --tokens FILE (make one with `backorder token create --tokens FILE --tenant T --roles read`), or --insecure-no-auth on loopback")
            }
            let registry = try TokenRegistry(path: path, logger: logger)
            guard !registry.entries.isEmpty else { throw ServeError.refused("\(path) holds no tokens: `backorder token create --tokens \(path) …` makes one") }
            tokens = registry
        }
        let served = try await ServedStore.open(options, onViewFailure: { error, delay in
            logger.error("the records view failed: \(error); it is opened again from its last commit in \(delay) s")
        },
                                                onFeedFailure: { error in logger.error("the live feed stopped (live streams read the log themselves now): \(error)") },
                                                onWatchFailure: { error in logger.error("looking for other writers' events on the cluster failed (tried again every \(options.clusterPollInterval) s): \(error)") },
                                                onAppendsResumed: { logger.notice("appends resumed: the cluster answers again, and the stream's messages through its end are read") })
        for note in served.openingNotes { logger.notice("\(note)") }
        // Say when the records view has caught up at start (a rebuild may take a while;
        // /readyz answers 503 until then).
        Task {
            let started = ContinuousClock.now
            guard (try? await served.view.snapshot(covering: Array(repeating: 0, count: served.source.partitionCount), timeout: 86_400 * 365)) != nil else { return }
            let (applied, _, reason) = served.view.progress
            let rebuilt = reason.map { " (rebuilt: \($0))" } ?? ""
            logger.notice("records view ready: \(applied) events applied in \(ContinuousClock.now - started)\(rebuilt)")
        }
        let app = Application(router: router(served, tokens: tokens),
                              server: .http1(configuration: .init(additionalChannelHandlers: [ContinueHandler()])),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "backorder"),
                              onServerRunning: { channel in await onReady(channel.localAddress?.port ?? options.port) },
                              logger: logger)
        var failure: (any Error)?
        do { try await app.runService() } catch { failure = error }
        do { try await served.close() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

/// Why the server would not start.
public enum ServeError: Error, Sendable, CustomStringConvertible {
    case refused(String)

    public var description: String {
        switch self {
        case let .refused(reason): return reason
        }
    }
}
