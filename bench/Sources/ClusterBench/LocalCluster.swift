// The 3-node loopback cluster ClusterBench starts for itself (through tools/cluster.sh),
// and the CPU accounting of its server processes.
import Foundation
import Synchronization

/// Seconds on CLOCK_MONOTONIC.
func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Writes a progress line to standard error (the report goes to standard output).
func progress(_ line: String) {
    FileHandle.standardError.write(Data("ClusterBench: \(line)\n".utf8))
}

/// Runs a command with its standard output sent to standard error and waits for it;
/// returns its exit status. posix_spawn, not Foundation's Process, and every descriptor
/// above 2 closed before the command runs, so the servers tools/cluster.sh leaves running
/// hold nothing of ours (Process's exit watch never fired while a server kept one of its
/// descriptors).
@discardableResult
func runTool(_ command: String, _ commandArguments: [String]) throws -> Int32 {
    let executable = "/bin/bash"
    let closeAndRun = #"for d in /proc/self/fd/*; do n=${d##*/}; if (( n > 2 )); then eval "exec $n>&-"; fi; done 2>/dev/null; exec "$@""#
    let arguments = ["-c", closeAndRun, "run", command] + commandArguments
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, 2, 1)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else { throw BenchError("cannot start \(executable): \(String(decoding: Array(UnsafeBufferPointer(start: strerror(spawned), count: strlen(strerror(spawned)))).map { UInt8(bitPattern: $0) }, as: UTF8.self))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw BenchError("waitpid \(pid) failed (errno \(errno))") }
    }
    // WIFEXITED / WEXITSTATUS, which Swift does not import.
    return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// The standard output of a command (nil when it cannot run or fails).
func toolOutput(_ executable: String, _ arguments: [String], directory: String? = nil) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Whether a TCP port on 127.0.0.1 can be bound right now.
func portIsFree(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// A base port P whose nine ports (client P…P+2, cluster P+2000…, monitoring P+4000…,
/// tools/cluster.sh's layout) are all free.
func freeBasePort(nodes: Int) -> Int? {
    for _ in 0..<50 {
        let base = Int.random(in: 20_000..<40_000)
        let ports = (0..<nodes).flatMap { [base + $0, base + 2_000 + $0, base + 4_000 + $0] }
        if ports.allSatisfy(portIsFree) { return base }
    }
    return nil
}

/// A cluster started by tools/cluster.sh in a directory of its own. `stop()` stops it (by
/// the PIDs the script recorded) and deletes the directory; it runs at most once, whether
/// called after the run, after a failure or from a signal handler.
final class LocalCluster: Sendable {
    let script: String
    let directory: String
    let nodes: Int
    let basePort: Int
    private let stopped = Mutex(false)

    /// Starts the nodes; throws (after stopping whatever started) when the script fails.
    init(script: String, nodes: Int) throws {
        guard let base = freeBasePort(nodes: nodes) else { throw BenchError("no free base port found for \(nodes) nodes") }
        let template = NSTemporaryDirectory() + "clusterbench-XXXXXX"
        var path = Array(template.utf8CString)
        guard mkdtemp(&path) != nil else { throw BenchError("mkdtemp \(template) failed") }
        self.directory = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.script = script
        self.nodes = nodes
        self.basePort = base
        progress("starting a \(nodes)-node cluster in \(directory), base port \(base)")
        let status = try runTool("/bin/bash", [script, "start", "--dir", directory, "--nodes", String(nodes), "--base-port", String(base)])
        guard status == 0 else {
            stop()
            throw BenchError("tools/cluster.sh start exited with status \(status)")
        }
    }

    /// The client URLs, one per node.
    var urls: String { (0..<nodes).map { "nats://127.0.0.1:\(basePort + $0)" }.joined(separator: ",") }

    /// The server PIDs tools/cluster.sh recorded.
    var pids: [Int32] {
        (1...nodes).compactMap { i in
            (try? String(contentsOfFile: "\(directory)/n\(i)/pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// CPU seconds (user + system) the server processes have used so far.
    func serverCPUSeconds() -> Double { pids.map(processCPUSeconds).reduce(0, +) }

    /// The nodes holding a client connection right now (each node's monitoring /connz
    /// lists client connections only, not routes).
    func clientNodes() -> [String] {
        (1...nodes).compactMap { i in
            guard let json = toolOutput("/usr/bin/env", ["curl", "-fsS", "--max-time", "2", "http://127.0.0.1:\(basePort + 4_000 + i - 1)/connz"]),
                  let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
                  let count = object["num_connections"] as? Int, count > 0 else { return nil }
            return "n\(i)"
        }
    }

    /// Stops the nodes by PID and removes the directory (once).
    func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        progress("stopping the cluster in \(directory)")
        do {
            let status = try runTool("/bin/bash", [script, "stop", "--dir", directory, "--clean"])
            if status != 0 { progress("tools/cluster.sh stop exited with status \(status); check \(directory)") }
        } catch {
            progress("cannot run tools/cluster.sh stop (\(error)); stop the servers in \(directory) by hand")
        }
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat (0 when it is gone).
func processCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// This process's CPU seconds (all threads, user + system).
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Busy CPU seconds of the whole machine so far (/proc/stat, all but idle and iowait).
func machineBusySeconds() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = text.split(separator: "\n").first else { return 0 }
    let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard values.count >= 5 else { return 0 }
    let total = values.prefix(8).reduce(0, +)
    return (total - values[3] - values[4]) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
func loadAverages() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: ", ")
}

/// A setup or usage failure.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
