import EventLog

/// Wakes live readers when events are appended, without a thread per reader: each waits
/// (asynchronously) for the ring after the one it last saw, or for its timeout (the
/// heartbeat of a live stream).
final class AppendSignal: Sendable {
    private struct State {
        var rings: UInt64 = 0
        var nextTicket: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<UInt64, Never>] = [:]
    }

    private let state = ConditionLock(State())

    /// How many times it has rung.
    var rings: UInt64 { state.withLock { $0.rings } }

    /// Events were appended: wake every waiter.
    func ring() {
        let (rings, woken) = state.withLock { s -> (UInt64, [CheckedContinuation<UInt64, Never>]) in
            s.rings += 1
            defer { s.waiting = [:] }
            return (s.rings, Array(s.waiting.values))
        }
        for continuation in woken { continuation.resume(returning: rings) }
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
                s.waiting[ticket] = continuation
                return nil
            }
            if let now { return continuation.resume(returning: now) }
            Task { [self] in
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                let expired = state.withLock { s in s.waiting.removeValue(forKey: ticket).map { ($0, s.rings) } }
                if let (continuation, rings) = expired { continuation.resume(returning: rings) }
            }
        }
    }
}
