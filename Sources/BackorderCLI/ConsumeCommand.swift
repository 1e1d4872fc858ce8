import ArgumentParser
import Consumers
import EventStore
import Foundation
import OutOfStock
import RecordsView
import Spawn

/// `backorder consume`: a member of a consumer group (docs/CONSUMERS.md). Batches go to
/// standard output (acknowledged once written) or to `--exec CMD` (acknowledged when CMD
/// exits 0); each lane's checkpoint moves only past acknowledged or parked events.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Deliver events to a consumer group's member, with checkpoints: at least once, in order per lane.",
        discussion: """
        Members of one group (processes running `consume --group G`) share the store's partitions (lanes): \
        each lane is delivered by one member at a time, and taken over when that member dies. Without \
        --follow, a member exits once its lanes are delivered up to the log's end at its start.
        """)

    @OptionGroup var data: DataOptions
    @Option(help: "The consumer group (made on first use): 1–64 of A–Z a–z 0–9 _ . -.") var group: String
    @Option(help: "Only this tenant's events (the others are passed over).") var tenant: String?
    @Option(help: "Only events of these types (comma-separated, or repeat the option).") var type: [String] = []
    @Flag(help: "Keep delivering new events as they are appended (until interrupted).") var follow = false
    @Option(help: "Events per batch; one batch is in flight at a time, so also the most events delivered and not yet acknowledged.") var maxInFlight = 1_000
    @Option(help: "With --exec: seconds a command may run before its batch counts as failed (the command is stopped).") var ackWait = 30
    @Option(help: "Deliveries of a failing event before it is parked (`groups show` lists parked events).") var maxDeliver = 5
    @Option(help: "Run this shell command once per batch, with the batch (NDJSON) on its standard input; exit 0 acknowledges it.") var exec: String?
    @Option(help: "With --follow: the longest wait for new events, in milliseconds (on Linux the embedded log's writes wake the follower at once).") var pollMilliseconds = 20

    func run() async throws {
        guard (1...100_000).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1...100000") }
        guard (1...86_400).contains(ackWait) else { throw ValidationError("--ack-wait must be 1...86400 seconds") }
        guard (1...1_000).contains(maxDeliver) else { throw ValidationError("--max-deliver must be 1...1000") }
        guard (1...60_000).contains(pollMilliseconds) else { throw ValidationError("--poll-milliseconds must be 1...60000") }
        let types = Set(type.flatMap { $0.split(separator: ",").map(String.init) })
        for name in types where EventType.all[name] == nil {
            throw ValidationError("--type: unknown event type \(name) (types: \(EventType.all.keys.sorted().joined(separator: ", ")))")
        }
        do { try ConsumerGroup.validate(name: group) } catch { throw ValidationError("--group: \(error)") }
        try await runQuery {
            let place = try await GroupPlace.open(data, tenant: nil)
            let source = place.source
            let consumerGroup = try await place.group(group)
            var options = MemberOptions()
            options.maxInFlight = maxInFlight
            options.maxDeliver = maxDeliver
            let tenant = self.tenant
            if tenant != nil || !types.isEmpty {
                options.filter = { event in (tenant.map { event.tenant == $0 } ?? true) && (types.isEmpty || types.contains(event.type)) }
            }
            // A command runs in a process group of its own (see `run`); Ctrl-C reaches it
            // through this process.
            if exec != nil { SignalForwarding.install() }
            let member = try GroupMember(group: consumerGroup, source: source, options: options)
            defer { member.close() }
            try member.rebalance()
            var ends = try source.endOffsets()
            var output = StandardOutput()
            var delivered = 0, batches = 0, parked = 0
            let began = MonotonicTime.now
            let waiting = follow ? FollowWait(source: source, milliseconds: pollMilliseconds) : nil
            while true {
                if let delivery = try member.next(ends: ends) {
                    let failure: String?
                    if let exec {
                        failure = try run(exec, delivery)
                    } else {
                        for event in delivery.events { try output.appendLine { try EventOutput.appendLine(event, to: &$0) } }
                        try output.flush()  // written: acknowledged below
                        failure = nil
                    }
                    guard let failure else {
                        try member.acknowledge(delivery)
                        delivered += delivery.events.count
                        batches += 1
                        continue
                    }
                    switch try member.failed(delivery, reason: failure) {
                    case let .retry(milliseconds):
                        printError("consume: lane \(delivery.lane) offsets \(delivery.range.lowerBound)..<\(delivery.range.upperBound), delivery \(delivery.attempt) of \(maxDeliver) failed (\(failure)); again in \(milliseconds) ms")
                        if milliseconds > 0 { try await Task.sleep(for: .milliseconds(milliseconds)) }
                    case let .parked(offsets):
                        parked += offsets.count
                        printError("consume: parked lane \(delivery.lane) offset \(offsets.map(String.init).joined(separator: ",")) after \(delivery.attempt) failed deliveries (\(failure)); the lane goes on")
                    }
                    continue
                }
                guard let waiting else { break }
                try await waiting.next()
                ends = try source.endOffsets()
            }
            let seconds = MonotonicTime.now.seconds(since: began)
            let lanes = member.lanes.map(String.init).joined(separator: ",")
            printError("consumed \(delivered) events in \(batches) batches in \(String(format: "%.3f", seconds)) s, \(parked) parked; group \(group), lanes [\(lanes)]")
        }
    }

    /// A file in the temporary directory that has no name (`O_TMPFILE`), holding `bytes`,
    /// read from its start: a consumer killed at any moment leaves nothing behind. Where the
    /// file system has no unnamed files, a named one is removed right after it is opened.
    static func anonymousFile(holding bytes: [UInt8]) throws -> Int32 {
        let directory = FileManager.default.temporaryDirectory.path
        // O_TMPFILE (`__O_TMPFILE | O_DIRECTORY`): a macro Swift does not import.
        var fd = open(directory, 0o2000_0000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            let path = directory + "/backorder-batch-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw QueryError(description: "cannot make a file for the batch in \(directory): \(String(cString: strerror(errno)))") }
            unlink(path)
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw QueryError(description: "cannot write the batch's \(bytes.count) bytes to a file in \(directory): \(reason)")
            }
            written += n
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// Runs the command with the batch on its standard input; nil when it exits 0, else why
    /// not. A command still running after --ack-wait is stopped (TERM, then KILL).
    private func run(_ command: String, _ delivery: Delivery) throws -> String? {
        var batch: [UInt8] = []
        for event in delivery.events {
            try EventOutput.appendLine(event, to: &batch)
            batch.append(10)
        }
        let input = try Self.anonymousFile(holding: batch)
        defer { close(input) }
        var environment = ProcessInfo.processInfo.environment
        environment["BACKORDER_GROUP"] = group
        environment["BACKORDER_LANE"] = String(delivery.lane)
        environment["BACKORDER_FIRST_OFFSET"] = String(delivery.range.lowerBound)
        environment["BACKORDER_ATTEMPT"] = String(delivery.attempt)
        let process: SpawnedProcess
        SignalForwarding.spawning()
        do {
            // A process group of its own: a command stopped after --ack-wait is stopped with
            // everything it started, which would go on with a batch delivered again.
            process = try SpawnedProcess("/bin/sh", ["-c", command], environment: environment,
                                         standardInputDescriptor: input, inheritingOutput: true, newProcessGroup: true)
        } catch {
            SignalForwarding.forward(to: nil)
            return "cannot start /bin/sh: \(error)"
        }
        SignalForwarding.forward(to: process)
        defer { SignalForwarding.forward(to: nil) }
        if !process.waitUntilExit(timeout: Double(ackWait)) {
            process.signalGroup(SIGTERM)
            if !process.waitUntilExit(timeout: 1) {
                process.signalGroup(SIGKILL)
                process.waitUntilExit()
            }
            process.signalGroup(SIGKILL)  // what the command left behind
            return "still running after --ack-wait \(ackWait) s; stopped"
        }
        if let unknown = process.waitFailure { return "its exit status is unknown (\(unknown))" }
        if process.terminationReason == .uncaughtSignal { return "killed by signal \(process.terminationStatus - 128)" }
        return process.terminationStatus == 0 ? nil : "exit status \(process.terminationStatus)"
    }
}
