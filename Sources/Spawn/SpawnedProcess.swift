import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` — by `consume --exec` and by the tests. Not
/// Foundation's `Process`: on Linux its `run()` crashes now and then (a 256-byte over-read of
/// a `dirent` while it lists /proc/self/fd; swift-corelibs-foundation PR #5472, not in Swift
/// 6.3.1), and CI saw it kill a whole test process. Standard input is a file (or /dev/null),
/// output and error are files, /dev/null or the parent's own; every other descriptor is
/// closed in the child.
package final class SpawnedProcess: @unchecked Sendable {
    package let processIdentifier: pid_t
    private let lock = NSLock()
    /// The wait status once reaped.
    private var status: Int32?
    /// Why `waitpid` failed, when it did (the child's status is then unknown).
    private var waitErrno: Int32?

    /// Starts `executable`. `standardOutput` and `standardError` are appended to (created
    /// when missing); nil is /dev/null, or the parent's own stream with `inheritingOutput`.
    /// `standardInputDescriptor`, an open descriptor of the caller's, is the child's
    /// standard input instead of `standardInput`'s file (the caller still closes it).
    /// The child starts with no signal blocked and every signal at its default action;
    /// with `newProcessGroup` it leads a process group of its own, which `signalGroup`
    /// reaches (its children too).
    package init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                 standardInput: String? = nil, standardInputDescriptor: Int32? = nil, standardOutput: String? = nil, standardError: String? = nil,
                 inheritingOutput: Bool = false, newProcessGroup: Bool = false) throws {
        precondition(standardInput == nil || standardInputDescriptor == nil, "one standard input")
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let standardInputDescriptor {
            posix_spawn_file_actions_adddup2(&actions, standardInputDescriptor, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, standardInput ?? "/dev/null", O_RDONLY, 0)
        }
        for (fd, path) in [(Int32(1), standardOutput), (2, standardError)] where path != nil || !inheritingOutput {
            posix_spawn_file_actions_addopen(&actions, fd, path ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        if let closeFrom = Self.closeFrom, closeFrom(&actions, 3) == 0 {
            // every descriptor from 3 on is closed in the child
        } else {
            for fd in 3..<Int32(4096) where fcntl(fd, F_GETFD) != -1 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let pairs = environment.map { $0.map { "\($0.key)=\($0.value)" } }
        let envp = pairs.map { $0.map { strdup($0) } + [nil] }
        defer { for p in envp ?? [] { free(p) } }
        var pid: pid_t = 0
        let spawned: Int32 = if var envp { posix_spawn(&pid, executable, &actions, &attributes, argv, &envp) } else {
            posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        }
        guard spawned == 0 else { throw SpawnError(message: "cannot run \(executable): \(String(cString: strerror(spawned)))") }
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

    /// Its exit status, or 128 + the signal that ended it; waits for it first. 255 when its
    /// status could not be known (`waitFailure` says why).
    package var terminationStatus: Int32 {
        let status = reap(blocking: true) ?? 0
        if waitFailure != nil { return 255 }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Why its exit status is unknown (`waitpid` failed: e.g. SIGCHLD ignored), or nil.
    package var waitFailure: String? {
        lock.lock()
        defer { lock.unlock() }
        return waitErrno.map { "waitpid failed: \(String(cString: strerror($0))) (errno \($0))" }
    }

    /// How it ended.
    package enum TerminationReason: Sendable { case exit, uncaughtSignal }

    /// Whether it exited or a signal ended it; waits for it first.
    package var terminationReason: TerminationReason {
        (reap(blocking: true) ?? 0) & 0x7f == 0 ? .exit : .uncaughtSignal
    }

    /// Waits at most `seconds` for it to exit; whether it did. Polls (1 ms at first, then up
    /// to 10 ms between looks): Linux has no wait with a timeout short of a pidfd.
    package func waitUntilExit(timeout seconds: Double) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        var pause: UInt32 = 1_000
        while reap(blocking: false) == nil {
            if DispatchTime.now().uptimeNanoseconds >= deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
        return true
    }

    /// Sends SIGTERM.
    package func terminate() { kill(processIdentifier, SIGTERM) }

    /// Sends `signal` to its process group (started with `newProcessGroup`): the command
    /// and whatever it started.
    package func signalGroup(_ signal: Int32) { kill(-processIdentifier, signal) }

    private func reap(blocking: Bool) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let result = waitpid(processIdentifier, &raw, blocking ? 0 : WNOHANG)
            if result == processIdentifier { status = raw; return raw }
            if result == 0 { return nil }
            if errno != EINTR {
                waitErrno = errno
                status = 0
                return 0
            }
        }
    }
}

/// Why a child could not be started.
package struct SpawnError: Error, CustomStringConvertible {
    package let message: String
    package var description: String { message }
}

/// Passes SIGINT, SIGTERM and SIGHUP on to the process group of the child being waited
/// for, then lets the signal end this process as it would have: a command started in a
/// process group of its own (`newProcessGroup`) does not outlive its parent's Ctrl-C.
///
/// Use: `spawning()`, start the child, `forward(to:)` it, and `forward(to: nil)` once it
/// has exited. A signal that comes while the child is being started is held until its
/// process group is known, then passed on.
package enum SignalForwarding {
    /// The process group signals go to: 0 none, -1 a child is being started, else its pid.
    private static let group = Atomic<Int32>(0)
    /// A signal that came while a child was being started (0: none).
    private static let held = Atomic<Int32>(0)

    /// Installs the handlers (once per process).
    package static func install() {
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal) { received in
                // Async-signal-safe only: atomics, kill, signal, raise.
                let target = SignalForwarding.group.load(ordering: .sequentiallyConsistent)
                if target == -1 {
                    SignalForwarding.held.store(received, ordering: .sequentiallyConsistent)
                    return
                }
                if target > 0 { kill(-target, received) }
                Glibc.signal(received, SIG_DFL)
                raise(received)
            }
        }
    }

    /// A child is about to be started: signals wait for `forward(to:)`.
    package static func spawning() { group.store(-1, ordering: .sequentiallyConsistent) }

    /// Signals go to `process`'s group from now on (nil: to none, and a held signal ends
    /// this process now).
    package static func forward(to process: SpawnedProcess?) {
        let target = process?.processIdentifier ?? 0
        group.store(target, ordering: .sequentiallyConsistent)
        let signal = held.exchange(0, ordering: .sequentiallyConsistent)
        guard signal != 0 else { return }
        if target > 0 { kill(-target, signal) }
        Glibc.signal(signal, SIG_DFL)
        raise(signal)
    }
}
