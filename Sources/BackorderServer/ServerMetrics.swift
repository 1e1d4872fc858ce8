import Prometheus

/// What `GET /metrics` shows, in Prometheus's text format (swift-prometheus).
public final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let eventsAppended: Counter
    let eventsDuplicate: Counter
    let linesRejected: Counter
    let appendRetries: Counter
    let appendSeconds: DurationHistogram
    let appendEvents: ValueHistogram
    let viewLagEvents: Gauge
    let liveSubscribers: Gauge
    let requestsInFlight: Gauge
    private let requestBuckets: [Duration] = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                               .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                               .milliseconds(500), .seconds(1), .seconds(5)]

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "backorder", metricName: metric, unitName: unit, helpText: help)
    }

    public init() {
        eventsAppended = registry.makeCounter(descriptor: Self.name("events_appended", "total", "Events appended and acknowledged."))
        eventsDuplicate = registry.makeCounter(descriptor: Self.name("events_duplicate", "total", "Lines acknowledged as resends of stored events."))
        linesRejected = registry.makeCounter(descriptor: Self.name("lines_rejected", "total", "Lines rejected by validation."))
        appendRetries = registry.makeCounter(descriptor: Self.name("append_retries", "total",
                                                                   "Appends decided again after a concurrent append moved one of their streams."))
        appendSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("append", "seconds", "From an append request's body to its acknowledgement (durable in fsync mode)."),
            labels: [], buckets: requestBuckets)
        appendEvents = registry.makeValueHistogram(descriptor: Self.name("append", "events", "Events per append request (each one atomic append)."),
                                                   buckets: [1, 2, 5, 10, 100, 1_000, 10_000])
        viewLagEvents = registry.makeGauge(descriptor: Self.name("view_lag", "events", "Events acknowledged but not yet in the published records view."))
        liveSubscribers = registry.makeGauge(descriptor: Self.name("live", "subscribers", "Open live (Server-Sent Events) streams."))
        requestsInFlight = registry.makeGauge(descriptor: Self.name("http_requests_in_flight", "requests",
                                                                    "Requests whose route is running (or queued for the blocking-call pool)."))
    }

    /// The request-duration histogram of one route and status class.
    func requestSeconds(route: String, status: Int) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: Self.name("http_request", "seconds", "HTTP request durations by route and status class."),
                                       labels: [("route", route), ("status", "\(status / 100)xx")], buckets: requestBuckets)
    }

    /// The text exposition.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
