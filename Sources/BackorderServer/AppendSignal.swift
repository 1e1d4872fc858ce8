import EventLog
import Foundation

/// Wakes live readers when events are appended, without a thread per reader: each waits
/// (asynchronously) for the ring after the one it last saw, or for its timeout (the
/// heartbeat of a live stream, a long poll's pause).
///
/// Timeouts are kept as deadlines and ended by one sweeping thread, which runs every
/// `sweepMilliseconds` while someone waits — not by a timer task per wait: with 1,000 live
/// streams, each append made and cancelled 1,000 timer tasks. A timeout therefore ends up
/// to `sweepMilliseconds` late. A thread, not a task: a task's sleep ends on Swift's
/// cooperative threads (two on this machine), and while they were busy a 0.2 s timeout
/// ended after more than 20 s in a loaded test run.
final class AppendSignal: Sendable {
    private struct Waiter {
        let continuation: CheckedContinuation<UInt64, Never>
        let deadline: ContinuousClock.Instant
    }

    private struct State {
        var rings: UInt64 = 0
        var nextTicket: UInt64 = 0
        var waiting: [UInt64: Waiter] = [:]
        /// No waiter's deadline is before it (a sweep before it scans nothing).
        var earliest: ContinuousClock.Instant?
        var sweeping = false
    }

    static let sweepMilliseconds = 50
    private let state = ConditionLock(State())

    /// How many times it has rung.
    var rings: UInt64 { state.withLock { $0.rings } }

    /// Readers waiting now.
    var waiters: Int { state.withLock { $0.waiting.count } }

    /// Events were appended: wake every waiter.
    func ring() {
        let (rings, woken) = state.withLock { s -> (UInt64, [Waiter]) in
            s.rings += 1
            defer {
                s.waiting = [:]
                s.earliest = nil
            }
            return (s.rings, Array(s.waiting.values))
        }
        for waiter in woken { waiter.continuation.resume(returning: rings) }
    }

    /// Returns the ring count once it is past `seen`, or after `timeout` seconds whatever it
    /// is.
    func wait(after seen: UInt64, timeout: Double) async -> UInt64 {
        let deadline = ContinuousClock.now + .nanoseconds(Int64(max(0, timeout) * 1e9))
        return await withCheckedContinuation { continuation in
            let (now, startSweeper) = state.withLock { s -> (UInt64?, Bool) in
                guard s.rings <= seen else { return (s.rings, false) }
                s.nextTicket += 1
                s.waiting[s.nextTicket] = Waiter(continuation: continuation, deadline: deadline)
                s.earliest = min(s.earliest ?? deadline, deadline)
                defer { s.sweeping = true }
                return (nil, !s.sweeping)
            }
            if let now { return continuation.resume(returning: now) }
            guard startSweeper else { return }
            do { try startThread(name: "append-signal") { [self] in sweep() } } catch {
                Task.detached { [self] in sweep() }  // no thread to be had: one cooperative thread sleeps instead
            }
        }
    }

    /// Ends the waits whose deadline has passed, every `sweepMilliseconds`, until nobody
    /// waits.
    private func sweep() {
        while true {
            Thread.sleep(forTimeInterval: Double(Self.sweepMilliseconds) / 1_000)
            let now = ContinuousClock.now
            let (rings, expired, more) = state.withLock { s -> (UInt64, [Waiter], Bool) in
                var expired: [Waiter] = []
                if let earliest = s.earliest, earliest <= now {
                    var next: ContinuousClock.Instant?
                    for (ticket, waiter) in s.waiting {
                        if waiter.deadline <= now {
                            expired.append(waiter)
                            s.waiting.removeValue(forKey: ticket)
                        } else {
                            next = min(next ?? waiter.deadline, waiter.deadline)
                        }
                    }
                    s.earliest = next
                }
                if s.waiting.isEmpty { s.sweeping = false }
                return (s.rings, expired, !s.waiting.isEmpty)
            }
            for waiter in expired { waiter.continuation.resume(returning: rings) }
            if !more { return }
        }
    }
}
