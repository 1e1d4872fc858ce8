import EventLog

/// Wakes live readers when events are appended, without a thread per reader: each waits
/// (asynchronously) for the ring after the one it last saw, or for its timeout (the
/// heartbeat of a live stream).
final class AppendSignal: Sendable {
    /// A reader waiting, and the timer that ends its wait (cancelled when a ring does).
    private struct Waiter {
        let continuation: CheckedContinuation<UInt64, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var rings: UInt64 = 0
        var nextTicket: UInt64 = 0
        var waiting: [UInt64: Waiter] = [:]
    }

    private let state = ConditionLock(State())

    /// How many times it has rung.
    var rings: UInt64 { state.withLock { $0.rings } }

    /// Events were appended: wake every waiter.
    func ring() {
        let (rings, woken) = state.withLock { s -> (UInt64, [Waiter]) in
            s.rings += 1
            defer { s.waiting = [:] }
            return (s.rings, Array(s.waiting.values))
        }
        for waiter in woken {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: rings)
        }
    }

    /// Returns the ring count once it is past `seen`, or after `timeout` seconds whatever it
    /// is.
    func wait(after seen: UInt64, timeout: Double) async -> UInt64 {
        let ticket = state.withLock { s -> UInt64 in
            s.nextTicket += 1
            return s.nextTicket
        }
        return await withCheckedContinuation { continuation in
            let now = state.withLock { s -> UInt64? in
                guard s.rings <= seen else { return s.rings }
                s.waiting[ticket] = Waiter(continuation: continuation)
                return nil
            }
            if let now { return continuation.resume(returning: now) }
            let timer = Task { [self] in
                guard (try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))) != nil else { return }
                let expired = state.withLock { s in s.waiting.removeValue(forKey: ticket).map { ($0, s.rings) } }
                if let (waiter, rings) = expired { waiter.continuation.resume(returning: rings) }
            }
            // Kept with the waiter so that a ring cancels it; if the ring came first, the
            // waiter is gone and the timer is cancelled now.
            let rung = state.withLock { s -> Bool in
                guard s.waiting[ticket] != nil else { return true }
                s.waiting[ticket]?.timer = timer
                return false
            }
            if rung { timer.cancel() }
        }
    }
}
