import EventLog
import Foundation

/// A token bucket per caller: `rate` requests a second sustained, `burst` at once. Memory:
/// one bucket per token in the tokens file (callers without a token share one).
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let rate: Double
    private let burst: Double
    private let buckets = ConditionLock([String: Bucket]())

    init(rate: Double, burst: Double) {
        precondition(rate > 0 && burst >= 1, "RateLimiter: rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
    }

    /// Takes one request from `caller`'s bucket; nil when allowed, else the seconds until it
    /// would be.
    func take(_ caller: String) -> Double? {
        let now = ContinuousClock.now
        return buckets.withLock { all -> Double? in
            var bucket = all[caller] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            bucket.tokens = min(burst, bucket.tokens + (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * rate)
            bucket.updated = now
            defer { all[caller] = bucket }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
    }
}
