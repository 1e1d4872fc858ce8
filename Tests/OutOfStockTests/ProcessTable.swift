import Foundation

/// What /proc says about the machine's processes, for tests that must wait for, or clean
/// up after, processes they did not start themselves (a killed consumer's commands, a
/// browser's helpers, a stopped nats-server).
enum ProcessTable {
    /// Processes one of whose arguments satisfies `matches`.
    static func processes(withAnArgument matches: (Substring) -> Bool) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let arguments = cmdline.split(separator: 0).map { Substring(decoding: $0, as: UTF8.self) }
            return arguments.contains(where: matches) ? pid : nil
        }
    }

    /// The state letter (`R`, `S`, `T` stopped, `Z` zombie …) of a process, or of one of its
    /// threads with `thread`; nil when there is none.
    static func state(_ pid: pid_t, thread: String? = nil) -> Substring? {
        let path = thread.map { "/proc/\(pid)/task/\($0)/stat" } ?? "/proc/\(pid)/stat"
        guard let stat = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        // After the command name, which is in parentheses and may hold spaces.
        return stat.split(separator: ")").last?.split(separator: " ").first
    }

    /// Whether every thread of a process is stopped (SIGSTOP has taken effect).
    static func isStopped(_ pid: pid_t) -> Bool {
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return !threads.isEmpty && threads.allSatisfy { state(pid, thread: $0) == "T" }
    }
}
