import EventLog
import EventStore
import KVStore
import Projections

/// Keeps the records view following a log while a producer appends to it, on a thread of
/// its own: each `poke()` (the producer acknowledged more events) wakes it to apply what
/// was acknowledged since; `finish()` applies the rest, commits and closes. Appending and
/// projecting then overlap on the two cores instead of running one after the other.
///
/// It holds the view's lock from `start` to `finish`. A failure is kept and reported by
/// `finish()` (the events are stored whatever happens to the view).
public final class ViewFollower: @unchecked Sendable {
    // @unchecked: `view` is touched only by the follower's thread; the rest is behind `state`.
    private struct State {
        var pokes = 0
        var finishing = false
        var done = false
        var failure: (any Error)?
        var applied: Int64 = 0
        var resetReason: String?
        var opened = false
        var snapshot: KVSnapshot?
    }

    private let state = ConditionLock(State())
    private let source: any EventSource
    private var view: MaintainedView<RecordsProjector>?

    /// Starts following: opens the view as its writer (waiting up to `lockTimeoutMilliseconds`
    /// for another process) on the follower's thread.
    public init(root: String, source: any EventSource, options: KVOptions = RecordsViewAccess.followerOptions(), storage: any Storage = PosixStorage(),
                lockTimeoutMilliseconds: Int = 60_000) throws {
        self.source = source
        try startThread(name: "view-follower") { [self] in
            do {
                let view = try MaintainedView<RecordsProjector>.openWriter(root: root, source: source, options: options, storage: storage,
                                                                           lockTimeoutMilliseconds: lockTimeoutMilliseconds)
                self.view = view
                state.withLock {
                    $0.resetReason = view.resetReason
                    $0.opened = true
                    // A view just reset holds nothing worth reading.
                    $0.snapshot = view.resetReason == nil ? view.snapshot() : nil
                }
                state.broadcast()
                try run(view)
            } catch {
                state.withLock { $0.failure = error }
                try? view?.close()
            }
            state.withLock { $0.done = true; $0.opened = true }
            state.broadcast()
        }
    }

    /// The view as it was when the follower opened it (waiting for that), to decide appends
    /// from (`ViewStateLookup`); nil when it could not be opened or had to be rebuilt.
    public func openedSnapshot() -> KVSnapshot? {
        state.wait(until: { $0.opened }, timeoutNanoseconds: nil) { $0.snapshot }
    }

    private func run(_ view: MaintainedView<RecordsProjector>) throws {
        while true {
            let finishing = state.wait(until: { $0.pokes > 0 || $0.finishing }, timeoutNanoseconds: nil) { s -> Bool in
                s.pokes = 0
                return s.finishing
            }
            // Intermediate catch-ups do not commit at the end (the memtable commits when
            // full); the last one does.
            let applied = try view.catchUp(commitAtEnd: finishing)
            state.withLock { $0.applied += applied }
            if finishing {
                try view.close()
                return
            }
        }
    }

    /// More events were acknowledged: apply them soon.
    public func poke() {
        state.withLock { $0.pokes += 1 }
        state.broadcast()
    }

    /// Applies everything acknowledged, commits, closes the view and releases its lock.
    /// Returns the events applied, and why the view was rebuilt if it was.
    public func finish() throws -> (applied: Int64, resetReason: String?) {
        state.withLock { $0.finishing = true }
        state.broadcast()
        return try state.wait(until: { $0.done }, timeoutNanoseconds: nil) { s in
            if let failure = s.failure { throw failure }
            return (s.applied, s.resetReason)
        }
    }
}
