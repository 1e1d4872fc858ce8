// ClusterBench (issue 10): ingest events/s and single-event append latency of the
// embedded store (fsync) against the JetStream store, R1 and R3, on a 3-node loopback
// cluster. See bench/README.md, "ClusterBench".
//
//   ClusterBench [--events N] [--single N] [--only embedded,r1,r3,lanes] [--out FILE]
//                [--cluster URLS] [--lanes N] [--sweep 8,32,128] [--window N] [--dir DIR]
import Dispatch
import EventLog
import EventStore
import Foundation
import JetStreamStore

// MARK: Options

let arguments = Array(CommandLine.arguments.dropFirst())

func fail(_ message: String) -> Never {
    progress(message)
    exit(2)
}

func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name) else { return nil }
    guard i + 1 < arguments.count else { fail("\(name) needs a value") }
    return arguments[i + 1]
}

func intOption(_ name: String, _ fallback: Int, minimum: Int = 1) -> Int {
    guard let text = option(name) else { return fallback }
    guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value >= minimum else {
        fail("\(name) must be an integer ≥ \(minimum), not \"\(text)\"")
    }
    return value
}

let known: Set = ["--events", "--single", "--warmup", "--batch", "--window", "--lanes", "--sweep", "--sweep-events",
                  "--streams", "--only", "--out", "--cluster", "--dir", "--cluster-script"]
for (i, argument) in arguments.enumerated() where argument.hasPrefix("--") {
    if argument == "--help" || argument == "-h" {
        print("usage: ClusterBench [--events N] [--single N] [--only embedded,r1,r3,lanes] [--out FILE] [--cluster URLS]")
        print("       [--lanes N] [--sweep 8,32,128] [--sweep-events N] [--window N] [--batch N] [--warmup N] [--streams N] [--dir DIR]")
        exit(0)
    }
    guard known.contains(argument) else { fail("unknown option \(argument) (see --help)") }
    _ = i
}

let batchedCount = intOption("--events", 200_000)
let singleCount = intOption("--single", 5_000)
let warmUp = intOption("--warmup", 100, minimum: 0)
let batchSize = intOption("--batch", 1_000)
let window = intOption("--window", 4)
let lanes = intOption("--lanes", ClusterOptions(urls: "").lanes)
let sweepCount = intOption("--sweep-events", batchedCount)
let streamCount = min(intOption("--streams", 100_000), batchedCount)
let sweep = (option("--sweep") ?? "8,32,128").split(separator: ",").map { part -> Int in
    guard let value = Int(part), value >= 1 else { fail("--sweep takes lane counts like 8,32,64, not \"\(part)\"") }
    return value
}
let sections = Set((option("--only") ?? "embedded,r1,r3,lanes").split(separator: ",").map(String.init))
for section in sections where !["embedded", "r1", "r3", "lanes"].contains(section) {
    fail("--only takes embedded, r1, r3 and lanes, not \"\(section)\"")
}
let outPath = option("--out")
let givenURLs = option("--cluster")
let baseDirectory = option("--dir") ?? NSTemporaryDirectory()
/// bench/Sources/ClusterBench/main.swift → the repository root.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path
let clusterScript = option("--cluster-script") ?? repositoryRoot + "/tools/cluster.sh"

// MARK: Stores

/// One store under test.
enum Subject {
    case embedded
    case jetStream(replicas: Int, lanes: Int)

    var label: String {
        switch self {
        case .embedded: "embedded log, fsync"
        case let .jetStream(replicas, lanes): "JetStream R\(replicas), \(lanes) lanes"
        }
    }
}

/// What one store measured.
struct Row {
    var subject: Subject
    var durability = ""
    var batchedSeconds = 0.0
    var batchedEvents = 0
    var batchedCPU = CPUShare()
    var latencies: [Double] = []
    var singleSeconds = 0.0
    var singleCPU = CPUShare()
    var note = ""
}

let runTag = "\(getpid())-\(Int(Date().timeIntervalSince1970) % 1_000_000)"
var groupCounter = 0

/// A fresh JetStream store (a new group, so a new stream).
@MainActor
func openJetStream(urls: String, replicas: Int, lanes: Int) async throws -> JetStreamStore {
    groupCounter += 1
    var options = ClusterOptions(urls: urls)
    options.group = "cb-\(runTag)-r\(replicas)-l\(lanes)-\(groupCounter)"
    options.replicas = replicas
    options.lanes = lanes
    return try await JetStreamStore.open(options)
}

/// The stream's leader and message count, for the report.
func describe(_ store: JetStreamStore, expected: Int) async throws -> String {
    let status = try await store.status()
    guard status.messages == UInt64(expected) else {
        throw BenchError("stream \(store.streamName) holds \(status.messages) messages, \(expected) expected")
    }
    return "stream \(store.streamName): \(status.messages) messages, leader \(status.leader ?? "?")"
        + (status.peers.isEmpty ? "" : ", replicas " + status.peers.map { "\($0.name)\($0.current ? "" : " (behind)")" }.joined(separator: ", "))
}

/// Batched ingest, then single appends, on one fresh store.
@MainActor
func measure(_ subject: Subject, urls: String?, cluster: LocalCluster?, batched: [NewEvent], single: [NewEvent]?) async throws -> Row {
    var row = Row(subject: subject)
    var servers: (@Sendable () -> Double)?
    if let cluster { servers = { cluster.serverCPUSeconds() } }
    let store: any EventAppender
    var embedded: EventStore?
    var directory: String?
    switch subject {
    case .embedded:
        let path = baseDirectory + "/clusterbench-embedded-\(runTag)"
        directory = path
        var options = StoreOptions()
        options.log.durability = .fsync
        options.log.partitionCount = 8
        let opened = try await EventStore.open(at: path, options: options)
        embedded = opened
        store = opened
    case let .jetStream(replicas, lanes):
        guard let urls else { throw BenchError("no cluster") }
        store = try await openJetStream(urls: urls, replicas: replicas, lanes: lanes)
        // Where the client's one connection went (nats.c picks a random URL): with R1, a
        // publish to a leader on another node takes one more hop.
        if let cluster { row.note = "client connected to \(cluster.clientNodes().joined(separator: ", "))" }
    }
    defer { if let directory { try? FileManager.default.removeItem(atPath: directory) } }
    row.durability = store.durabilityStatement
    progress("\(subject.label): \(batched.count) events in calls of \(batchSize), \(window) in flight")
    let (_, seconds, cpu) = try await withCPU(servers: servers) {
        try await batchedIngest(store, batched, batch: batchSize, window: window)
    }
    row.batchedSeconds = seconds
    row.batchedEvents = batched.count
    row.batchedCPU = cpu
    progress("  \(Int(Double(batched.count) / seconds)) events/s (\(String(format: "%.1f", seconds)) s)")
    if let jetStream = store as? JetStreamStore {
        row.note = try await describe(jetStream, expected: batched.count) + (row.note.isEmpty ? "" : "; \(row.note)")
    }
    if let single {
        progress("\(subject.label): \(single.count) single-event appends, each awaited")
        let (latencies, singleSeconds, singleCPU) = try await withCPU(servers: servers) {
            try await singleAppends(store, single, warmUp: warmUp)
        }
        row.latencies = latencies
        row.singleSeconds = singleSeconds
        row.singleCPU = singleCPU
        progress("  p50 \(milliseconds(percentile(latencies, 0.5))) ms, p99 \(milliseconds(percentile(latencies, 0.99))) ms")
    }
    if let embedded { try await embedded.close() }
    return row
}

func milliseconds(_ seconds: Double) -> String { String(format: "%.3f", seconds * 1_000) }

func grouped(_ value: Int) -> String {
    let digits = String(value)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return out
}

// MARK: Run

let needsCluster = !sections.isDisjoint(with: ["r1", "r3", "lanes"])
var cluster: LocalCluster?
if needsCluster && givenURLs == nil {
    guard FileManager.default.fileExists(atPath: clusterScript) else { fail("no \(clusterScript); pass --cluster-script PATH or --cluster URLS") }
    do { cluster = try LocalCluster(script: clusterScript, nodes: 3) } catch { fail("cannot start the cluster: \(error)") }
}
let ownCluster = cluster

/// On SIGINT, SIGTERM or SIGHUP: stop our servers, then exit. Nonisolated, so that the
/// handlers (run on a global queue) do not inherit the main actor's isolation.
nonisolated func stopOnSignals(_ cluster: LocalCluster?) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM, SIGHUP].map { signalNumber in
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler {
            progress("signal \(signalNumber): stopping")
            cluster?.stop()
            exit(128 + signalNumber)
        }
        source.resume()
        return source
    }
}
let signalSources = stopOnSignals(ownCluster)

let urls = givenURLs ?? ownCluster?.urls
let loadBefore = loadAverages()
let startDate = Date()
var rows: [Row] = []
var sweepRows: [Row] = []
var failure: (any Error)?
do {
    let batched = batchEvents(batchedCount, streams: streamCount)
    let single = singleEvents(singleCount + warmUp)
    var subjects: [Subject] = []
    if sections.contains("embedded") { subjects.append(.embedded) }
    if sections.contains("r1") { subjects.append(.jetStream(replicas: 1, lanes: lanes)) }
    if sections.contains("r3") { subjects.append(.jetStream(replicas: 3, lanes: lanes)) }
    for subject in subjects {
        rows.append(try await measure(subject, urls: urls, cluster: ownCluster, batched: batched, single: single))
    }
    if sections.contains("lanes") {
        let sweepEvents = sweepCount == batchedCount ? batched : batchEvents(sweepCount, streams: min(streamCount, sweepCount))
        for laneCount in sweep {
            sweepRows.append(try await measure(.jetStream(replicas: 3, lanes: laneCount), urls: urls, cluster: ownCluster,
                                               batched: sweepEvents, single: nil))
        }
    }
} catch {
    failure = error
}
let loadAfter = loadAverages()
ownCluster?.stop()
if let failure { fail("failed: \(failure)") }

// MARK: Report

let formatter = ISO8601DateFormatter()
let averageData = Double(singleEvents(1)[0].data.count)
let batchedSample = batchEvents(min(batchedCount, 1_000), streams: streamCount)
let averageEnvelope = Double(batchedSample.reduce(0) { $0 + EventEnvelope.encode($1, streamVersion: 1, previousOffset: nil).count }) / Double(batchedSample.count)
let averageBatchData = Double(batchedSample.reduce(0) { $0 + $1.data.count }) / Double(batchedSample.count)
var report = "# ClusterBench: embedded log against JetStream R1 and R3 (issue 10)\n\n"
report += "- **Started:** \(formatter.string(from: startDate)) (UTC); \(ProcessInfo.processInfo.activeProcessorCount) cores; "
report += "\(toolOutput("/usr/bin/env", ["nats-server", "--version"]) ?? "nats-server ?"); Backorder HEAD "
report += "\(toolOutput("/usr/bin/env", ["git", "rev-parse", "--short", "HEAD"], directory: repositoryRoot) ?? "?").\n"
report += "- **Command:** `ClusterBench \(arguments.joined(separator: " "))`\n"
if let ownCluster {
    report += "- **Cluster:** started by ClusterBench with tools/cluster.sh: 3 nats-server processes on 127.0.0.1, client ports "
    report += "\(ownCluster.basePort)–\(ownCluster.basePort + 2), file storage in \(ownCluster.directory) (deleted afterwards). "
    report += "R1 is a replicas=1 stream on the same 3-node cluster (one node holds it; the client's connection may be to another node, one route hop). "
    report += "The servers share the machine's cores with the client.\n"
} else if let givenURLs {
    report += "- **Cluster:** given with --cluster (\(givenURLs)); the servers' CPU is not measured.\n"
}
report += "- **Events:** OutOfStockReported reports, \(String(format: "%.1f", averageBatchData)) B of encoded data and "
report += "\(String(format: "%.1f", averageEnvelope)) B of envelope on average (the single appends: \(Int(averageData)) B of data). "
report += "Batched: \(grouped(batchedCount)) events over \(grouped(streamCount)) record streams, expected version any, "
report += "calls of \(grouped(batchSize)) events with \(window) calls in flight. Single: \(grouped(singleCount)) appends of one event on a new stream "
report += "(expected version 0), each awaited, after \(warmUp) not counted. Every store is fresh (a new directory, or a new JetStream stream).\n"
report += "- **Load average** (1, 5, 15 min): \(loadBefore) before, \(loadAfter) after.\n"
report += "- **CPU** columns: cores busy during the measurement — this process / the 3 nats-server processes / the rest of the machine.\n\n"

report += "| store | batched ingest, events/s | s | CPU client / servers / rest | single append p50 ms | p99 ms | p99.9 ms | max ms | single appends/s | CPU client / servers / rest |\n"
report += "|---|---:|---:|---|---:|---:|---:|---:|---:|---|\n"
for row in rows {
    let rate = Int(Double(row.batchedEvents) / row.batchedSeconds)
    report += "| \(row.subject.label) | **\(grouped(rate))** | \(String(format: "%.2f", row.batchedSeconds)) | \(row.batchedCPU.describe()) | "
    if row.latencies.isEmpty {
        report += "– | – | – | – | – | – |\n"
    } else {
        report += "\(milliseconds(percentile(row.latencies, 0.5))) | **\(milliseconds(percentile(row.latencies, 0.99)))** | "
        report += "\(milliseconds(percentile(row.latencies, 0.999))) | \(milliseconds(row.latencies.last ?? .nan)) | "
        report += "\(grouped(Int(Double(row.latencies.count + warmUp) / row.singleSeconds))) | \(row.singleCPU.describe()) |\n"
    }
}
if !sweepRows.isEmpty {
    report += "\nR3 lanes sweep (batched ingest only, \(grouped(sweepCount)) events, a fresh stream each):\n\n"
    report += "| lanes | events/s | s | CPU client / servers / rest |\n|---:|---:|---:|---|\n"
    for row in sweepRows {
        guard case let .jetStream(_, laneCount) = row.subject else { continue }
        report += "| \(laneCount) | **\(grouped(Int(Double(row.batchedEvents) / row.batchedSeconds)))** | "
        report += "\(String(format: "%.2f", row.batchedSeconds)) | \(row.batchedCPU.describe()) |\n"
    }
}
report += "\nWhat an acknowledgement means (each store's `durabilityStatement`):\n\n"
var statements: [String] = []
for row in rows + sweepRows where !statements.contains(row.durability) { statements.append(row.durability) }
for statement in statements { report += "- \(statement)\n" }
let notes = (rows + sweepRows).filter { !$0.note.isEmpty }
if !notes.isEmpty {
    report += "\nStreams after the batched ingest (message count checked):\n\n"
    for row in notes { report += "- \(row.subject.label): \(row.note)\n" }
}
print(report, terminator: "")
if let outPath {
    do { try report.write(toFile: outPath, atomically: true, encoding: .utf8) } catch { fail("cannot write \(outPath): \(error)") }
}
