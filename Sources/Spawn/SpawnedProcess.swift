import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, for the tests. Not Foundation's `Process`:
/// on Linux its `run()` crashes now and then (a 256-byte over-read of a `dirent` while it
/// lists /proc/self/fd; swift-corelibs-foundation PR #5472, not in Swift 6.3.1), and CI saw
/// it kill the whole test process. Standard input, output and error are files (or
/// /dev/null); every other descriptor is closed in the child.
package final class SpawnedProcess: @unchecked Sendable {
    package let processIdentifier: pid_t
    private let lock = NSLock()
    /// The wait status once reaped.
    private var status: Int32?

    /// Starts `executable`. `standardOutput` and `standardError` are appended to (created
    /// when missing); nil is /dev/null.
    package init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                 standardInput: String? = nil, standardOutput: String? = nil, standardError: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, standardOutput ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, standardError ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let closeFrom = Self.closeFrom {
            _ = closeFrom(&actions, 3)
        } else {
            for fd in 3..<Int32(4096) where fcntl(fd, F_GETFD) != -1 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let pairs = environment.map { $0.map { "\($0.key)=\($0.value)" } }
        let envp = pairs.map { $0.map { strdup($0) } + [nil] }
        defer { for p in envp ?? [] { free(p) } }
        var pid: pid_t = 0
        let spawned: Int32 = if var envp { posix_spawn(&pid, executable, &actions, nil, argv, &envp) } else { posix_spawn(&pid, executable, &actions, nil, argv, environ) }
        guard spawned == 0 else { throw ChildProcessError(message: "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        processIdentifier = pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc
    /// module does not import.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Whether it has not exited yet (reaps it when it has).
    package var isRunning: Bool { reap(blocking: false) == nil }

    /// Waits for it to exit.
    package func waitUntilExit() { _ = reap(blocking: true) }

    /// Its exit status, or 128 + the signal that ended it; waits for it first.
    package var terminationStatus: Int32 {
        let status = reap(blocking: true) ?? 0
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// How it ended.
    package enum TerminationReason: Sendable { case exit, uncaughtSignal }

    /// Whether it exited or a signal ended it; waits for it first.
    package var terminationReason: TerminationReason {
        (reap(blocking: true) ?? 0) & 0x7f == 0 ? .exit : .uncaughtSignal
    }

    /// Sends SIGTERM.
    package func terminate() { kill(processIdentifier, SIGTERM) }

    private func reap(blocking: Bool) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let result = waitpid(processIdentifier, &raw, blocking ? 0 : WNOHANG)
            if result == processIdentifier { status = raw; return raw }
            if result == 0 { return nil }
            if errno != EINTR { status = raw; return raw }
        }
    }
}
