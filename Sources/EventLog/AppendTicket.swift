/// The promise of one submitted batch: `acknowledgement()` returns when the writer has
/// written it with the log's durability (or throws what went wrong).
///
/// Submitting is synchronous and returns a ticket at once, so a caller can submit the
/// next batch — and compress it on another core — while the previous one is flushed.
public final class AppendTicket: Sendable {
    private struct State {
        var result: Result<AppendAcknowledgement, LogError>?
        var waiters: [CheckedContinuation<Result<AppendAcknowledgement, LogError>, Never>] = []
    }

    private let state = ConditionLock(State())

    init() {}

    init(failed error: LogError) {
        state.withLock { $0.result = .failure(error) }
    }

    /// Waits for the batch to be acknowledged.
    public func acknowledgement() async throws -> AppendAcknowledgement {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<AppendAcknowledgement, LogError>, Never>) in
            let ready = state.withLock { state -> Result<AppendAcknowledgement, LogError>? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }

    /// The outcome when it is known, without waiting.
    public var outcome: Result<AppendAcknowledgement, LogError>? { state.withLock { $0.result } }

    func complete(_ result: Result<AppendAcknowledgement, LogError>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Result<AppendAcknowledgement, LogError>, Never>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }
}
