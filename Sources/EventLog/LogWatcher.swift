#if canImport(Glibc)
import Glibc
#endif

/// Wakes a reader of a log that another process writes. A follower (`read --follow`,
/// `consume --follow`) waits here for the writer's next change instead of sleeping a poll
/// interval: Linux's inotify reports a segment file written, created or renamed into a
/// partition's directory, and the wait ends at once. The poll interval stays the longest
/// wait, so a change inotify does not report (a network file system, a full event queue)
/// is still seen; where inotify is not available at all, `wait` sleeps that interval.
///
/// A wake-up says only that something changed: the reader then refreshes the log, which
/// reads complete, checksummed batches (`WriteAheadLog.refresh`).
public final class LogWatcher: @unchecked Sendable {
    // One owner: the follower's loop (not shared between tasks).
    private let descriptor: Int32
    /// Directories watched (for messages).
    public let watched: Int

    /// Watches the partition directories of the log at `path` (a read-only log's), and
    /// `directories` besides (a store's, whose recorded-order cut moves after the log).
    public init(log: WriteAheadLog, alsoWatching directories: [String] = []) {
        var fd: Int32 = -1
        var count = 0
        #if os(Linux)
        fd = inotify_init1(Int32(IN_NONBLOCK) | Int32(IN_CLOEXEC))
        if fd >= 0 {
            let mask = UInt32(IN_MODIFY) | UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE)
            let partitions = (0..<log.partitionCount).map { log.path + "/" + WriteAheadLog.partitionDirectoryName($0) }
            for directory in partitions + directories where inotify_add_watch(fd, directory, mask) >= 0 { count += 1 }
            // Without every directory watched, a write to an unwatched one would wait a
            // whole interval: better to poll honestly.
            if count != partitions.count + directories.count {
                close(fd)
                fd = -1
                count = 0
            }
        }
        #endif
        descriptor = fd
        watched = count
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Whether changes wake `wait` (false: it sleeps its whole timeout).
    public var isWatching: Bool { descriptor >= 0 }

    /// Returns when the log's files change, or after `milliseconds`. Reports that arrived
    /// before the call count: a change between the reader's last look and this call ends
    /// the wait at once, so none is slept through.
    public func wait(milliseconds: Int) {
        precondition(milliseconds >= 0, "LogWatcher.wait: a negative timeout")
        guard descriptor >= 0 else {
            usleep(UInt32(min(milliseconds, 60_000)) * 1_000)
            return
        }
        var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&request, 1, Int32(min(milliseconds, 60_000)))
        guard ready > 0 else { return }
        drain()
    }

    /// Reads every queued report (their content does not matter: the reader looks at the
    /// log itself).
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if n <= 0 { return }
        }
    }
}
