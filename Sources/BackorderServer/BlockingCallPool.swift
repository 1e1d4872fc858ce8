import EventLog
import Hummingbird

/// Threads of their own for tasks whose calls block their thread: the JetStream client's
/// requests (a stream read, a consumer group's lease, a message by sequence) wait for the
/// cluster, for seconds when it elects a leader. On Swift's cooperative pool — one thread
/// per core, two here — two such requests stalled every route of the server, `/healthz`
/// included. A task that prefers this executor (`withTaskExecutorPreference`) runs its
/// non-isolated code here, child tasks too, and leaves the cooperative pool free.
///
/// Bounded: `threadCount` threads (16 for `shared`), started at first use and kept for the
/// process's life; when all of them wait for the cluster, further jobs queue here, not on
/// the cooperative pool.
final class BlockingCallPool: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` is only touched under `queue`'s lock.
    /// The server's pool, shared by every served cluster store of the process.
    static let shared = BlockingCallPool(threadCount: 16)

    private struct Queue {
        var jobs: [UnownedJob] = []
        var next = 0
    }

    private let queue = ConditionLock(Queue())

    init(threadCount: Int) {
        precondition(threadCount >= 1, "BlockingCallPool: \(threadCount) threads")
        for n in 0..<threadCount {
            do {
                try startThread(name: "blocking-\(n)") { [self] in work() }
            } catch {
                // Without its threads the pool would never run a job: stop loudly.
                preconditionFailure("BlockingCallPool: cannot start thread \(n): \(error)")
            }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.jobs.append(job) }
        queue.signal()
    }

    private func work() {
        while true {
            let job = queue.wait(until: { $0.next < $0.jobs.count }, timeoutNanoseconds: nil) { q -> UnownedJob in
                let job = q.jobs[q.next]
                q.next += 1
                // Compact once the taken jobs are the larger part.
                if q.next >= 64 && q.next * 2 >= q.jobs.count {
                    q.jobs.removeFirst(q.next)
                    q.next = 0
                }
                return job
            }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs a route group's handlers on the blocking-call pool (for a cluster store).
struct BlockingCallsMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let pool: BlockingCallPool

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        try await withTaskExecutorPreference(pool) { try await next(request, context) }
    }
}
