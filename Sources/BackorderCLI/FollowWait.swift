import EventLog
import EventStore

/// What `read --follow` and `consume --follow` do between looks at the log: wait for new
/// events, then catch the source up. On the embedded log the writer's writes end the wait
/// (`LogWatcher`, inotify) and the log is refreshed in place; a JetStream source is asked
/// again after the interval (its ends are read from the server).
struct FollowWait {
    private let log: EventReader?
    private let watcher: LogWatcher?
    /// The longest wait, in milliseconds (`--poll-milliseconds`).
    let milliseconds: Int

    init(source: any EventSource, milliseconds: Int) {
        log = source as? EventReader
        watcher = log.map { $0.makeWatcher() }
        self.milliseconds = milliseconds
    }

    /// Returns once something may have been appended (or the interval has passed), with
    /// the embedded log caught up with it.
    func next() async throws {
        if let watcher { watcher.wait(milliseconds: milliseconds) } else { try await Task.sleep(for: .milliseconds(milliseconds)) }
        if let log { try log.refresh() }
    }
}
