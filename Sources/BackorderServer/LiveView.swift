import EventLog
import EventStore
import Foundation
import KVStore
import Projections
import RecordsView

/// The records view of a running server: one thread holds the view as its writer, applies
/// what the store acknowledges (`poke`), and publishes what it applied as a read snapshot
/// that any request may use.
///
/// Publishing is not done per event: at most every `publishInterval`, or at once when a
/// query waits for events not yet published. A publication seals what was applied in
/// memory (`uncommittedSnapshot`); every second, or after 16 publications, the view commits
/// (one table file, written by the key-value store's background worker), so frequent
/// publishing does not leave a trail of tiny files for compaction to merge. A query
/// that must be current asks for the log's acknowledged ends when it starts
/// (`snapshot(covering:)`), so it sees every event acknowledged before it, and waits only
/// while this thread applies them.
public final class LiveView: @unchecked Sendable {
    // @unchecked: `view` is touched only by the view's thread; everything else shared is
    // behind `state`'s lock.
    public struct Published: Sendable {
        /// The rows as of `positions`.
        public let snapshot: KVSnapshot
        /// Per lane, the offset after the last event the snapshot reflects.
        public let positions: [Int64]
        /// Counts publications (1 is the first).
        public let generation: UInt64

        /// Whether it reflects every event before `ends`.
        public func covers(_ ends: [Int64]) -> Bool {
            precondition(ends.count == positions.count, "LiveView: lane count \(ends.count) is not the view's \(positions.count)")
            return zip(positions, ends).allSatisfy { $0 >= $1 }
        }
    }

    /// A query waiting for a publication, and the timer that fails it when its time is up
    /// (cancelled when a publication answers it first).
    private struct Waiter {
        let ends: [Int64]
        let continuation: CheckedContinuation<Published, any Error>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var pokes = 0
        /// Whether the view's thread waits for pokes (not while it lets appends gather:
        /// `catchUpGap`), so that a poke wakes it only when it would act on it.
        var listening = true
        /// Queries waiting for events to be published, by ticket.
        var waiting: [UInt64: Waiter] = [:]
        var nextTicket: UInt64 = 0
        var stopping = false
        var stopped = false
        /// The view's last failure, while it is being reopened (nil once it caught up again).
        var failure: (any Error)?
        /// Failures in a row.
        var failures = 0
        var published: Published?
        /// Events applied since the view opened (a rebuild counts here too).
        var applied: Int64 = 0
        /// Events to apply when the view opened (its backlog).
        var backlog: Int64 = 0
        var resetReason: String?
    }

    private let state = ConditionLock(State())
    private let source: any EventSource
    private let publishInterval: Double
    /// After a catch-up that applied events, the longest the thread lets further appends
    /// gather before it reads the log again — unless a query waits. At a server's pace of
    /// single-event appends, a catch-up per append cost a wake-up, a read of the log and an
    /// apply per event. Never longer than `publishInterval`.
    private let catchUpGap: Double
    private var view: MaintainedView<RecordsProjector>?

    /// Opens the view as its writer on a thread of its own and starts catching it up with
    /// `source` (a rebuild, if the view must be rebuilt, runs there too: `progress` says how
    /// far it is).
    ///
    /// A failure — a read of the log or a write of the view that throws — does not stop
    /// the view: its thread closes it (what was applied and not committed is dropped),
    /// waits (0.1 s, doubling up to `maxRetryDelay`) and opens it again from its last
    /// commit, until it catches up or the view is closed. Meanwhile queries answer from
    /// the last publication when it covers them, else wait and then fail with
    /// `LiveViewError.failing`, and `failure` holds the error. `onFailure` hears each
    /// failure (on the view's thread), for the server's log; queries are told only that the
    /// view is failing, without its details. `catchUpGap`: see the property.
    public init(root: String, source: any EventSource, publishInterval: Double = 0.1, catchUpGap: Double = 0.005,
                options: KVOptions = RecordsViewAccess.followerOptions(), storage: any Storage = PosixStorage(),
                lockTimeoutMilliseconds: Int = 10_000, maxRetryDelay: Double = 5,
                onFailure: @escaping @Sendable (_ error: any Error, _ retryIn: Double) -> Void = { _, _ in }) throws {
        precondition(publishInterval >= 0, "LiveView: publishInterval must not be negative")
        precondition(maxRetryDelay > 0, "LiveView: maxRetryDelay must be positive")
        precondition(catchUpGap >= 0, "LiveView: catchUpGap must not be negative")
        self.source = source
        self.publishInterval = publishInterval
        self.catchUpGap = min(catchUpGap, publishInterval)
        try startThread(name: "live-view") { [self] in
            var failures = 0
            while true {
                do {
                    let view = try MaintainedView<RecordsProjector>.openWriter(root: root, source: source, options: options, storage: storage,
                                                                               lockTimeoutMilliseconds: lockTimeoutMilliseconds)
                    self.view = view
                    let backlog = try view.eventsBehind()
                    state.withLock {
                        $0.resetReason = view.resetReason
                        $0.backlog = backlog
                        $0.applied = 0
                    }
                    try run(view)
                    break
                } catch {
                    // Closed without a commit: the next open starts from the last one.
                    try? view?.close()
                    view = nil
                    failures += 1
                    let delay = min(maxRetryDelay, 0.1 * Double(1 << min(failures - 1, 20)))
                    state.withLock {
                        $0.failure = error
                        $0.failures = failures
                    }
                    onFailure(error, delay)
                    let stopping = state.wait(until: { $0.stopping }, timeoutNanoseconds: UInt64(delay * 1e9)) { $0.stopping }
                    if stopping { break }
                }
            }
            do { try view?.close() } catch { state.withLock { $0.failure = $0.failure ?? error } }
            let waiting = state.withLock { s in
                s.stopped = true
                defer { s.waiting = [:] }
                return Array(s.waiting.values)
            }
            state.broadcast()
            for waiter in waiting {
                waiter.timer?.cancel()
                waiter.continuation.resume(throwing: LiveViewError.stopped)
            }
        }
    }

    /// Publications kept in memory before a commit; and the longest a publication stays
    /// uncommitted (the view's restart point on disk lags at most this much).
    static let maxUncommittedPublications = 16
    static let commitInterval = 1.0

    private func run(_ view: MaintainedView<RecordsProjector>) throws {
        // The first catch-up (the backlog, or a rebuild) commits as it goes and at its end.
        try view.catchUp { applied in self.state.withLock { $0.applied = applied } }
        publish(view.snapshot(), view)
        // Caught up: a failure before this one is over.
        state.withLock {
            $0.failure = nil
            $0.failures = 0
        }
        var lastPublish = ContinuousClock.now, lastCommit = ContinuousClock.now
        var unpublished = false
        var uncommitted = 0
        while true {
            // Wait for news; with applied events not yet published, no longer than the rest
            // of the publish interval, and with publications not yet committed, no longer
            // than the rest of the commit interval.
            var timeout: Double?
            if unpublished { timeout = max(0, publishInterval - secondsSince(lastPublish)) }
            if uncommitted > 0 { timeout = min(timeout ?? .infinity, max(0, Self.commitInterval - secondsSince(lastCommit))) }
            let (stopping, waiters) = state.wait(until: { $0.pokes > 0 || $0.stopping || (!$0.waiting.isEmpty && unpublished) },
                                                 timeoutNanoseconds: timeout.map { UInt64($0 * 1e9) }) { s -> (Bool, Int) in
                s.pokes = 0
                return (s.stopping, s.waiting.count)
            }
            if stopping {
                try view.catchUp(commitAtEnd: true)
                return
            }
            let applied = try view.catchUp(commitAtEnd: false)
            state.withLock { $0.applied += applied }
            unpublished = unpublished || applied > 0
            let commitDue = uncommitted >= Self.maxUncommittedPublications || (uncommitted > 0 && secondsSince(lastCommit) >= Self.commitInterval)
            if unpublished && (waiters > 0 || secondsSince(lastPublish) >= publishInterval) && !commitDue {
                // Published in memory: no table file per publication.
                publish(try view.uncommittedSnapshot(), view)
                lastPublish = ContinuousClock.now
                unpublished = false
                uncommitted += 1
            } else if commitDue || (unpublished && secondsSince(lastCommit) >= Self.commitInterval) {
                try view.commit()
                publish(view.snapshot(), view)
                lastPublish = ContinuousClock.now
                lastCommit = lastPublish
                unpublished = false
                uncommitted = 0
            }
            if applied > 0 && catchUpGap > 0 {
                // Let appends gather (a query that waits, or stopping, ends this at once).
                state.withLock { $0.listening = false }
                state.wait(until: { $0.stopping || !$0.waiting.isEmpty }, timeoutNanoseconds: UInt64(catchUpGap * 1e9)) { $0.listening = true }
            }
        }
    }

    private func publish(_ snapshot: KVSnapshot, _ view: MaintainedView<RecordsProjector>) {
        let positions = view.checkpoint.positions
        let published = state.withLock { s in
            s.published = Published(snapshot: snapshot, positions: positions, generation: (s.published?.generation ?? 0) + 1)
            return s.published!
        }
        state.broadcast()
        let covered = state.withLock { s in
            let tickets = s.waiting.filter { published.covers($0.value.ends) }.map(\.key)
            return tickets.compactMap { s.waiting.removeValue(forKey: $0) }
        }
        for waiter in covered {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: published)
        }
    }

    /// The store acknowledged more events: apply them soon.
    public func poke() {
        let listening = state.withLock { s -> Bool in
            s.pokes += 1
            return s.listening
        }
        if listening { state.broadcast() }
    }

    /// The newest published snapshot, if there is one yet.
    public var latest: Published? { state.withLock { $0.published } }

    /// How far the first catch-up is: events applied and the backlog it started with, and
    /// why the view was rebuilt if it was.
    public var progress: (applied: Int64, backlog: Int64, resetReason: String?) {
        state.withLock { ($0.applied, $0.backlog, $0.resetReason) }
    }

    /// Why the view failed, while it is being reopened (nil when it is current or catching up).
    public var failure: (any Error)? { state.withLock { $0.failure } }

    /// Failures in a row (0 when the view is well).
    public var failures: Int { state.withLock { $0.failures } }

    /// A snapshot reflecting every event before `ends` (the log's acknowledged ends when a
    /// request started), waiting (without blocking a thread) up to `timeout` seconds for the
    /// view to apply and publish them. Throws `LiveViewError` when it cannot.
    public func snapshot(covering ends: [Int64], timeout: Double) async throws -> Published {
        if let published = latest, published.covers(ends) { return published }
        // The view may not know of these events yet (another process appended them to a
        // cluster store): look now rather than at the next poke.
        poke()
        let ticket = state.withLock { s -> UInt64 in
            s.nextTicket += 1
            return s.nextTicket
        }
        return try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { s -> Result<Published, LiveViewError>? in
                if let published = s.published, published.covers(ends) { return .success(published) }
                if s.stopped { return .failure(.stopped) }
                s.waiting[ticket] = Waiter(ends: ends, continuation: continuation)
                return nil
            }
            if let outcome { return continuation.resume(with: outcome) }
            state.broadcast()
            let timer = Task { [self] in
                guard (try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))) != nil else { return }
                expire(ticket)
            }
            // Kept with the waiter so that an answer cancels it; if the answer came first,
            // the waiter is gone and the timer is cancelled now.
            let answered = state.withLock { s -> Bool in
                guard s.waiting[ticket] != nil else { return true }
                s.waiting[ticket]?.timer = timer
                return false
            }
            if answered { timer.cancel() }
        }
    }

    /// Fails a query still waiting when its time is up.
    private func expire(_ ticket: UInt64) {
        guard let waiter = state.withLock({ $0.waiting.removeValue(forKey: ticket) }) else { return }
        let (applied, backlog, reason) = progress
        let failures = self.failures
        waiter.continuation.resume(throwing: failures > 0 ? LiveViewError.failing(failures: failures)
            : LiveViewError.notCaughtUp(applied: applied, backlog: backlog, rebuilding: reason != nil))
    }

    /// Applies what is acknowledged, commits, closes the view and releases its lock.
    public func close() throws {
        state.withLock { $0.stopping = true }
        state.broadcast()
        try state.wait(until: { $0.stopped }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
        }
    }
}

/// Why a query could not be answered from the live view. Its text is for clients: it
/// says what is the case without the underlying error (which names the server's files; the
/// server logs that).
public enum LiveViewError: Error, Sendable, CustomStringConvertible {
    /// The view has not applied the events the query must see within its time (at start,
    /// while a backlog or a rebuild runs).
    case notCaughtUp(applied: Int64, backlog: Int64, rebuilding: Bool)
    /// The view failed (a read of the log or a write of its rows) and is being opened again.
    case failing(failures: Int)
    /// The view's thread stopped (the server is stopping).
    case stopped

    public var description: String {
        switch self {
        case let .notCaughtUp(applied, backlog, rebuilding) where applied < backlog:
            return (rebuilding ? "the records view is being rebuilt from the log" : "the records view is catching up with the log")
                + ": \(applied) of \(backlog) events applied; try again shortly"
        case let .notCaughtUp(applied, _, _):
            return "the records view has not applied the events acknowledged before this query in time (\(applied) applied since the view last opened); try again shortly"
        case let .failing(failures):
            return "the records view failed (\(failures) time\(failures == 1 ? "" : "s") in a row; the server's log says why) and is being opened again from its last commit; try again shortly"
        case .stopped:
            return "the records view has stopped: the server is stopping"
        }
    }
}

/// Seconds from `start` until now.
func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
