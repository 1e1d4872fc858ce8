#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable, protecting a value of type `State`.
///
/// The partition writer's flusher is an OS thread (it blocks in `fdatasync`, which must
/// never happen on Swift's cooperative pool), so it waits on a real condition variable.
package final class ConditionLock<State>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var state: State

    package init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `body` with the lock held.
    package func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }

    /// Waits, with the lock held, until `ready` is true or `timeoutNanoseconds` pass
    /// (nil: no timeout); then runs `body` with the lock still held.
    package func wait<R>(until ready: (State) -> Bool, timeoutNanoseconds: UInt64?, _ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if let timeoutNanoseconds {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let deadline = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec) + timeoutNanoseconds
            var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
            while !ready(state) {
                if pthread_cond_timedwait(condition, mutex, &until) == ETIMEDOUT { break }
            }
        } else {
            while !ready(state) { pthread_cond_wait(condition, mutex) }
        }
        return try body(&state)
    }

    /// Wakes every waiter (call after changing the state under the lock).
    package func broadcast() { pthread_cond_broadcast(condition) }

    /// Wakes one waiter (when any one of them can take the change: a queued job).
    package func signal() { pthread_cond_signal(condition) }
}

/// Starts a detached OS thread running `body`, named `name` (at most 15 bytes are kept)
/// so that it can be told apart in `top` and `perf`.
package func startThread(name: String? = nil, _ body: @escaping @Sendable () -> Void) throws {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String?
        init(_ body: @escaping @Sendable () -> Void, name: String?) { self.body = body; self.name = name }
    }
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
        if let name = box.name { nameCurrentThread(name) }
        box.body()
        return nil
    }, box)
    guard result == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw LogError.io(operation: "pthread_create", path: "", errno: result)
    }
    pthread_detach(thread)
}

/// Names the calling thread (Linux keeps 15 bytes), through `/proc/thread-self/comm`:
/// `pthread_setname_np` is a GNU extension Swift's Glibc module does not export.
private func nameCurrentThread(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    #endif
}
