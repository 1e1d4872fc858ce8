import Hummingbird

/// Runs before every route: finds the caller's token (`Authorization: Bearer …`), applies
/// its rate limit, and records the request's duration by route for `/metrics`. Routes
/// check what the token may do (`ServerContext.authorize`).
struct AccessMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    let tokens: TokenRegistry?
    let limiter: RateLimiter
    let metrics: ServerMetrics
    let bodyLimit: Int

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        metrics.requestsInFlight.increment()
        defer { metrics.requestsInFlight.decrement() }
        var context = context
        context.bodyLimit = bodyLimit
        let response: Response
        do {
            response = try await checked(request, &context, next)
        } catch let error as HTTPResponseError {
            metrics.requestSeconds(route: context.endpointPath ?? "unmatched", status: Int(error.status.code)).record(ContinuousClock.now - start)
            throw error
        }
        metrics.requestSeconds(route: context.endpointPath ?? "unmatched", status: Int(response.status.code)).record(ContinuousClock.now - start)
        return response
    }

    private func checked(_ request: Request, _ context: inout ServerContext, _ next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        var caller = "anonymous"
        if let tokens {
            context.authenticated = true
            if let header = request.headers[.authorization] {
                guard header.hasPrefix("Bearer "), let entry = tokens.entry(for: String(header.dropFirst(7))) else {
                    throw Problem(.unauthorized, "the bearer token is not one of this server's (backorder token list)")
                }
                context.token = entry
                caller = entry.id
            }
        }
        // Health probes are not limited: a flood from others must not fail them.
        let probe = request.uri.path == "/healthz" || request.uri.path == "/readyz"
        if !probe, let wait = limiter.take(caller) {
            var problem = Problem(.tooManyRequests, "over the rate limit of this token; retry after \(Int(wait.rounded(.up))) s")
            problem.headers[.retryAfter] = String(max(1, Int(wait.rounded(.up))))
            throw problem
        }
        return try await next(request, context)
    }
}
