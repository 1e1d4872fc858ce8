import EventLog

/// Dashboards answered recently, so that many clients asking for the same tenant's
/// dashboard cost one computation per published view and second, not one per request.
///
/// An entry is used while the view it was computed on is still the newest published one
/// (`generation`) and for at most `maxAge` seconds: the ageing figures (due soon, overdue)
/// move with the clock, so a cached answer measures them at most that long before the
/// request. A request that names its `now` gets a dashboard for exactly that time (cached
/// under it). Memory: at most `capacity` answers; when full it starts over.
final class DashboardCache: Sendable {
    struct Key: Hashable, Sendable {
        let tenant: String
        let from: Int64?
        let to: Int64?
        /// The `now` the request named, or nil for the clock's.
        let now: Int64?
    }

    private struct Entry {
        let answer: TaggedJSON
        let generation: UInt64
        let computed: ContinuousClock.Instant
    }

    private let entries = ConditionLock([Key: Entry]())
    private let capacity: Int
    private let maxAge: Duration

    init(capacity: Int = 1_024, maxAge: Duration = .seconds(1)) {
        precondition(capacity > 0, "DashboardCache: capacity must be positive")
        self.capacity = capacity
        self.maxAge = maxAge
    }

    /// The answer kept for `key` on view `generation`, if it is recent enough.
    func answer(_ key: Key, generation: UInt64) -> TaggedJSON? {
        entries.withLock { all in
            guard let entry = all[key], entry.generation == generation else { return nil }
            guard key.now != nil || ContinuousClock.now - entry.computed < maxAge else { return nil }
            return entry.answer
        }
    }

    /// Keeps an answer computed on view `generation`.
    func keep(_ answer: TaggedJSON, for key: Key, generation: UInt64) {
        entries.withLock { all in
            if all.count >= capacity { all.removeAll(keepingCapacity: true) }
            // A slower computation on an older view does not replace a newer answer.
            if let existing = all[key], existing.generation > generation { return }
            all[key] = Entry(answer: answer, generation: generation, computed: .now)
        }
    }
}
