import Foundation
import Testing
import TestSupport
@testable import EventStore
@testable import OutOfStock

/// Several `backorder append` processes at once on the same store and the same streams.
///
/// A writer process holds every partition's lock from open to close, and validates its
/// whole input (expected versions included) against the store as it is once it holds them,
/// so producers are serialized: a second process waits for the lock (up to 10 s), then
/// either proceeds or fails with a clear "locked by another writer" error and exit 1.
@Suite struct ConcurrentProducerTests {
    static let customers = 6
    static let updatesPerCustomer = 15

    /// A deterministic UUID (version 4 layout) for producer `producer`, event `n`.
    static func id(_ producer: Int, _ n: Int) -> String {
        String(format: "%08x-0000-4000-8000-%012x", producer, n)
    }

    /// One producer's input: the shared registrations (the same lines, ids included, in
    /// every producer, so all but one are duplicates), one update per customer that expects version 1 (only the
    /// first producer to run can have it), updates without expectations, and one line
    /// repeated inside the input (a duplicate of its own).
    static func input(producer: Int) -> (text: String, lines: [(id: String, line: String)]) {
        var lines: [(String, String)] = []
        func add(_ id: String, _ type: String, _ data: String, actor: Int = producer, extra: String = "") {
            lines.append((id, #"{"id":"\#(id)","type":"\#(type)","tenant":"acme","actor":"u\#(actor)"\#(extra),"data":{\#(data)}}"#))
        }
        for c in 0..<customers {
            add(id(999, c), "CustomerRegistered", #""customerId":"C-\#(c)","number":"\#(c)","name":"Customer \#(c)""#, actor: 999, extra: #","expectedVersion":0"#)
            add(id(producer, 10_000 + c), "CustomerUpdated", #""customerId":"C-\#(c)","name":"First update by \#(producer)""#, extra: #","expectedVersion":1"#)
        }
        for n in 0..<updatesPerCustomer {
            for c in 0..<customers {
                add(id(producer, n * customers + c), "CustomerUpdated", #""customerId":"C-\#(c)","phone":"+33 \#(producer) \#(n)""#)
            }
        }
        for c in 0..<customers { lines.append(lines[2 * customers + c]) } // repeated lines
        return (lines.map(\.1).joined(separator: "\n") + "\n", lines)
    }

    @Test func concurrentProducersKeepStreamsDenseAndReportEveryDuplicate() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Two waves of four processes: the first on a new store, the second on a store that
        // has the streams already.
        let producers = 8
        var inputs: [[(id: String, line: String)]] = []
        for p in 0..<producers {
            let (text, lines) = Self.input(producer: p)
            try text.write(toFile: "\(dir)/in-\(p).ndjson", atomically: true, encoding: .utf8)
            inputs.append(lines)
        }
        var results: [(Int, Int32, String, String)] = []
        for wave in [0..<4, 4..<8] {
            // All of a wave at once: every process is started before any is waited for
            // (their output goes to files, so none blocks on a full pipe).
            var running: [(Int, SpawnedProcess)] = []
            for p in wave {
                running.append((p, try startBackorder(["append", "\(dir)/in-\(p).ndjson", "--data", "\(dir)/store", "--json", "--partitions", "4",
                                                       "--skip-invalid", "--rejected", "\(dir)/rejected-\(p).ndjson"], output: "\(dir)/out-\(p)")))
            }
            for (p, process) in running {
                process.waitUntilExit()
                let out = (try? String(contentsOfFile: "\(dir)/out-\(p).stdout", encoding: .utf8)) ?? ""
                let err = (try? String(contentsOfFile: "\(dir)/out-\(p).stderr", encoding: .utf8)) ?? ""
                results.append((p, process.terminationStatus, out, err))
            }
        }
        var appended = 0, duplicates = 0, rejected = 0
        var rejectedLines: [Int: Set<Int>] = [:]
        for (p, status, out, err) in results {
            // 0: everything appended or duplicate; 3: appended, some lines rejected (--skip-invalid).
            #expect(status == 0 || status == 3, "producer \(p) exited \(status): \(err)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "producer \(p): \(out)")
            appended += report["appended"] as? Int ?? 0
            duplicates += report["duplicates"] as? Int ?? 0
            rejected += report["rejected"] as? Int ?? 0
            for error in report["errors"] as? [[String: Any]] ?? [] {
                #expect(error["field"] as? String == "expectedVersion", "producer \(p): only expected-version conflicts are rejected: \(error)")
                rejectedLines[p, default: []].insert(error["line"] as? Int ?? 0)
            }
        }
        let c = Self.customers, perProducer = inputs[0].count
        #expect(appended + duplicates + rejected == producers * perProducer, "every line is accounted for")
        // One registration per customer stored, the other producers' copies reported as
        // duplicates; each producer's repeated lines reported as duplicates too.
        #expect(duplicates == (producers - 1) * c + producers * c)
        // Exactly one "expects version 1" update per customer wins; the others are conflicts.
        #expect(rejected == (producers - 1) * c)

        let store = try await EventStore.open(at: dir + "/store")
        var stored = Set<EventID>()
        let all = try allStoredEvents(store), total = all.count
        for event in all { #expect(stored.insert(event.id).inserted, "event \(event.id) stored twice") }
        #expect(total == appended, "the store holds exactly the events reported appended")
        // Every line that was not rejected is stored (the first copy of a duplicate included).
        for (p, lines) in inputs.enumerated() {
            for (k, line) in lines.enumerated() where !(rejectedLines[p]?.contains(k + 1) ?? false) {
                let id = try #require(EventID(line.id))
                #expect(stored.contains(id), "producer \(p) line \(k + 1): acknowledged event \(line.id) missing")
            }
        }
        // Each customer stream: registration, the winning first update, every producer's updates.
        for customer in 0..<c {
            let events = try store.readStream(tenant: "acme", stream: StreamName.customer("C-\(customer)"))
            #expect(events.map(\.streamVersion) == Array(1...Int64(2 + producers * Self.updatesPerCustomer)))
            #expect(events.first?.type == "CustomerRegistered")
        }
        try await store.close()
    }

    /// A second writer waits while the first holds the store, then proceeds.
    @Test func aSecondWriterWaitsForTheFirst() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let holder = try HeldAppend(data: dir + "/store")
        let (text, _) = Self.input(producer: 1)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/in.ndjson", atomically: true, encoding: .utf8)
        try holder.waitUntilItHoldsTheStore()
        // Not a task: the blocking wait below may hold every thread of the task pool.
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) { holder.finish() }
        let (status, out, err) = try runBackorder(["append", dir + "/in.ndjson", "--data", dir + "/store", "--json", "--partitions", "4"])
        #expect(status == 0, "\(err)")
        #expect(out.contains("\"appended\":\(Self.input(producer: 1).lines.count - Self.customers)"), "\(out)")
        #expect(holder.wait() == 0)
    }

    /// A second writer that cannot get the lock within 10 s fails clearly, appending nothing.
    @Test func aSecondWriterGivesUpWithAClearError() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let holder = try HeldAppend(data: dir + "/store")
        defer { holder.finish(); _ = holder.wait() }
        try holder.waitUntilItHoldsTheStore()
        let (status, out, err) = try runBackorder(["append", "-", "--data", dir + "/store"], stdin: Self.input(producer: 2).text)
        #expect(status == 1)
        #expect(err.contains("locked by another writer"), "\(err)")
        #expect(!out.contains("appended"), "\(out)")
    }
}

/// Starts `backorder` with standard output and error going to `output`.stdout/.stderr.
func startBackorder(_ arguments: [String], output: String) throws -> SpawnedProcess {
    _ = try runBackorder(["--help"]) // fails clearly when the binary is missing
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = bundle.deletingLastPathComponent()
    for _ in 0..<4 where !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("backorder").path) {
        directory = directory.deletingLastPathComponent()
    }
    _ = FileManager.default.createFile(atPath: output + ".stdout", contents: nil)
    _ = FileManager.default.createFile(atPath: output + ".stderr", contents: nil)
    return try SpawnedProcess(directory.appendingPathComponent("backorder").path, arguments,
                              standardOutput: output + ".stdout", standardError: output + ".stderr")
}

/// `backorder append FIFO`: it opens the store (taking its locks) and holds it until
/// `finish()` closes the FIFO's writing end. A named pipe opened here with O_CLOEXEC,
/// not a `Pipe` on standard input: other processes started meanwhile must not inherit
/// the writing end, or the holder would never see the end of its input.
final class HeldAppend: @unchecked Sendable {
    let process: SpawnedProcess
    private let data: String
    private var writer: Int32 = -1

    init(data: String) throws {
        self.data = data
        _ = try runBackorder(["--help"]) // fails clearly when the binary is missing
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        for _ in 0..<4 where !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("backorder").path) {
            directory = directory.deletingLastPathComponent()
        }
        let fifo = data + ".fifo"
        try FileManager.default.createDirectory(atPath: (data as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard mkfifo(fifo, 0o600) == 0 else { throw CLIError(message: "mkfifo \(fifo): errno \(errno)") }
        process = try SpawnedProcess(directory.appendingPathComponent("backorder").path, ["append", fifo, "--data", data, "--partitions", "4"])
        // Blocks until the child opened the FIFO for reading; it opens the store next.
        writer = open(fifo, O_WRONLY | O_CLOEXEC)
        guard writer >= 0 else { throw CLIError(message: "open \(fifo): errno \(errno)") }
    }

    func finish() {
        if writer >= 0 { close(writer); writer = -1 }
    }

    /// Returns once the append holds the store's writer lock (`LOCK`, an `flock`): probed
    /// with a non-blocking lock of the test's own, let go at once when it is granted (the
    /// append then finds it taken for an instant, and retries, as it does for any writer).
    func waitUntilItHoldsTheStore(timeoutSeconds: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            guard process.isRunning else { throw CLIError(message: "the holding append exited (\(process.terminationStatus))") }
            let fd = open(data + "/LOCK", O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                defer { close(fd) }
                if flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK { return }
                flock(fd, LOCK_UN)
            }
            usleep(2_000)
        }
        throw CLIError(message: "the holding append did not lock \(data) within \(timeoutSeconds) s")
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}
