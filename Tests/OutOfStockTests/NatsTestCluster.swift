import Foundation
import Testing

/// A NATS JetStream cluster on 127.0.0.1 for one test, run by `tools/cluster.sh` in a
/// temporary directory on free ports. Every node is stopped by its recorded PID and the
/// directory deleted by `stop()`, which the tests call in a `defer` (so also when an
/// expectation fails) and `deinit` calls again as a backstop.
final class NatsTestCluster: @unchecked Sendable {
    let directory: String
    let nodes: Int
    let basePort: Int
    private var stopped = false

    /// The repository's root (for `tools/cluster.sh`).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Whether `nats-server` is installed (`.ci/run` installs it; elsewhere the tests that
    /// need it fail, saying so: they are not skipped).
    static var serverAvailable: Bool {
        ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts `nodes` nodes; tries a few random port ranges if one is taken.
    init(nodes: Int) throws {
        self.nodes = nodes
        var lastError = ""
        for _ in 0..<5 {
            let base = Int.random(in: 20_000...30_000)
            let dir = NSTemporaryDirectory() + "backorder-nats-\(UUID().uuidString.prefix(8))"
            let (status, output) = Self.tool(["start", "--dir", dir, "--nodes", String(nodes), "--base-port", String(base)])
            if status == 0 {
                directory = dir
                basePort = base
                return
            }
            lastError = output
            _ = Self.tool(["stop", "--dir", dir, "--clean"])
        }
        throw CLIError(message: "could not start a \(nodes)-node cluster: \(lastError)")
    }

    deinit { stop() }

    /// Client URLs of all nodes.
    var urls: String { (0..<nodes).map { "nats://127.0.0.1:\(basePort + $0)" }.joined(separator: ",") }

    /// Stops every node by PID and deletes the directory (idempotent).
    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = Self.tool(["stop", "--dir", directory, "--clean"])
    }

    /// SIGKILL node `n` (1-based).
    func kill(node n: Int) throws {
        let (status, output) = Self.tool(["kill-node", String(n), "--dir", directory])
        guard status == 0 else { throw CLIError(message: "kill-node \(n): \(output)") }
    }

    /// Sends `signal` to node `n`'s process (SIGSTOP: a node that stops answering without
    /// closing its connections, as one stalled by the machine; SIGCONT resumes it).
    /// Sends `signal` to node `n`. After SIGSTOP it returns once the node is stopped (its
    /// state in /proc is `T`, every thread): a signal takes effect when the process is next
    /// scheduled, and a node still running on the other core answered a publish sent just
    /// after the `kill`.
    func signal(node n: Int, _ signal: Int32) throws {
        let pidFile = directory + "/n\(n)/pid"
        guard let pid = Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)),
              Foundation.kill(pid, signal) == 0 else {
            throw CLIError(message: "cannot signal node \(n) (pid file \(pidFile))")
        }
        guard signal == SIGSTOP else { return }
        let deadline = Date().addingTimeInterval(10)
        while !ProcessTable.isStopped(pid) && Date() < deadline { usleep(1_000) }
        guard ProcessTable.isStopped(pid) else { throw CLIError(message: "node \(n) (pid \(pid)) is not stopped 10 s after SIGSTOP") }
    }

    /// Starts node `n` again with its data.
    func start(node n: Int) throws {
        let (status, output) = Self.tool(["start-node", String(n), "--dir", directory])
        guard status == 0 else { throw CLIError(message: "start-node \(n): \(output)") }
    }

    /// Messages node `n`'s replica of `stream` holds, from its monitoring endpoint.
    func messages(node n: Int, stream: String) throws -> Int? {
        let port = basePort + 4000 + n - 1
        let script = "exec 3<>/dev/tcp/127.0.0.1/\(port) && printf 'GET /jsz?streams=true HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        let (status, output) = Self.run("/bin/bash", ["-c", script])
        guard status == 0, let body = output.range(of: "\r\n\r\n").map({ output[$0.upperBound...] }),
              let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
        for account in json["account_details"] as? [[String: Any]] ?? [] {
            for detail in account["stream_detail"] as? [[String: Any]] ?? [] where detail["name"] as? String == stream {
                return (detail["state"] as? [String: Any])?["messages"] as? Int
            }
        }
        return nil
    }

    static func tool(_ arguments: [String]) -> (Int32, String) {
        run("/bin/bash", [repository + "/tools/cluster.sh"] + arguments)
    }

    /// Runs `tool` and waits for it with `waitpid`, its output in a temporary file.
    /// (Not Foundation's `Process`: its exit monitor missed the exit of a script that
    /// leaves a background server behind, and `waitUntilExit` never returned.)
    static func run(_ tool: String, _ arguments: [String]) -> (Int32, String) {
        let outputPath = NSTemporaryDirectory() + "backorder-nats-run-\(UUID().uuidString.prefix(8)).log"
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The servers the script leaves running must not hold the test's descriptors.
        for fd in 3..<Int32(1024) where fcntl(fd, F_GETFD) != -1 { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        guard spawned == 0 else { return (-1, "cannot run \(tool): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }
}
