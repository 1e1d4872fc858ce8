import EventLog
import Foundation

/// The real file system, with a gate on the syncs of some files (by path; the log's
/// segments by default): while the gate is closed, a sync of one of them waits, so the log
/// write it belongs to is neither acknowledged nor readable until the test opens the gate —
/// an append held in flight, as a slow fsync leaves it beside a server's other requests.
public final class GatedSyncStorage: ForwardingStorage, @unchecked Sendable {
    /// Which files' syncs the gate holds.
    public let holds: @Sendable (String) -> Bool
    private let gate = NSCondition()
    private var closed = false
    private var held = 0
    private var heldWaiters: [CheckedContinuation<Void, Never>] = []

    public init(holding holds: @escaping @Sendable (String) -> Bool = { $0.hasSuffix(".log") }) {
        self.holds = holds
        super.init()
    }

    public func close() { gate.withLock { closed = true } }
    public func open() { gate.withLock { closed = false; gate.broadcast() } }

    /// Returns once a sync is held at the gate — suspending, never blocking a thread of
    /// the cooperative pool: tests run side by side on two of them, and two tests
    /// blocked here would leave none for the appends they wait for.
    public func heldSync() async {
        await withCheckedContinuation { continuation in
            let now = gate.withLock {
                if held > 0 { return true }
                heldWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Blocks the syncing thread (the log's writer of the partition: its own, not the
    /// pool's) while the gate is closed.
    fileprivate func sync(_ file: any StorageFile) throws {
        let waiters = gate.withLock {
            held += 1
            defer { heldWaiters = [] }
            return heldWaiters
        }
        for waiter in waiters { waiter.resume() }
        gate.withLock {
            while closed { gate.wait() }
            held -= 1
        }
        try file.sync()
    }

    public override func wrap(_ file: any StorageFile, path: String) -> any StorageFile {
        holds(path) ? GatedFile(file, self) : file
    }
}

private final class GatedFile: ForwardingFile, @unchecked Sendable {
    let storage: GatedSyncStorage
    init(_ file: any StorageFile, _ storage: GatedSyncStorage) {
        self.storage = storage
        super.init(file)
    }
    override func sync() throws { try storage.sync(inner) }
}
