import Foundation
import Testing
import TestSupport
@testable import BackorderServer

/// The signal live streams and long polls wait on: a ring wakes every waiter at once, a
/// timeout ends a wait no sooner than asked (and at most a sweep later when idle).
@Suite struct AppendSignalTests {
    @Test func aRingWakesEveryWaiterAndATimeoutEndsAWaitWithoutOne() async throws {
        // On a queue of its own: the timings below are the signal's, not those of Swift's
        // cooperative threads, which other tests of this process may hold.
        try await Task(executorPreference: QueueExecutor("append-signal-test")) { try await Self.ringsAndTimeouts() }.value
    }

    private static func ringsAndTimeouts() async throws {
        let signal = AppendSignal()
        let results = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<500 { group.addTask { await signal.wait(after: 0, timeout: 3_600) } }
            let deadline = ContinuousClock.now + .seconds(30)
            while signal.waiters < 500 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(signal.waiters == 500)
            signal.ring()
            return try await group.reduce(into: [UInt64]()) { $0.append($1) }
        }
        #expect(results.count == 500 && results.allSatisfy { $0 == 1 } && signal.waiters == 0)
        // Past the seen ring: no wait at all.
        #expect(await signal.wait(after: 0, timeout: 3_600) == 1)
        // A timeout: the ring count as it is, no sooner than the timeout.
        let started = ContinuousClock.now
        #expect(await signal.wait(after: 1, timeout: 0.2) == 1)
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(200) && waited < .seconds(20), "\(waited)")
        #expect(signal.waiters == 0)

        // A short wait's end leaves a long one waiting, until a ring.
        async let long = signal.wait(after: 1, timeout: 3_600)
        #expect(await signal.wait(after: 1, timeout: 0.1) == 1)
        let deadline = ContinuousClock.now + .seconds(30)
        while signal.waiters < 1 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(3 * AppendSignal.sweepMilliseconds))
        #expect(signal.waiters == 1, "the long wait is still waiting after sweeps")
        signal.ring()
        #expect(await long == 2)
    }
}
