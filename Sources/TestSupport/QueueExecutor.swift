import Foundation

/// Runs tasks on a dispatch queue of their own instead of the cooperative pool: the
/// cluster store's reads block their thread on the network (for seconds during a leader
/// election), and on a 2-core machine two such tasks would stall every other test; and a
/// test that times something is not held up by the tests that block it.
package final class QueueExecutor: TaskExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    package init(_ label: String) { queue = DispatchQueue(label: label) }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
