import Foundation
import Testing
import TestSupport
@testable import EventStore
@testable import OutOfStock

/// kill -9 of `backorder append` at random moments, then the same input again until it
/// completes: every event ends up stored exactly once, with dense stream versions, and the
/// re-runs reject nothing (idempotency and the indexes' crash recovery, end to end).
@Suite(.serialized) struct CrashIngestTests {
    @Test func killedAppendsResumeIdempotently() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let input = dir + "/events.ndjson"
        let (status, generated, _) = try runBackorder(["generate", "--events", "6000", "--seed", "21", "--customers", "40", "--products", "15"])
        #expect(status == 0)
        try generated.write(toFile: input, atomically: true, encoding: .utf8)
        let rounds = Int(ProcessInfo.processInfo.environment["BACKORDER_INGEST_CRASH_ROUNDS"] ?? "") ?? 12
        var random = StateMachinePropertyTests.Random(seed: 77)
        var executable = ""
        _ = try runBackorder(["--help"]) // locates the binary, or fails clearly
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        for _ in 0..<4 where executable.isEmpty {
            let candidate = directory.appendingPathComponent("backorder").path
            if FileManager.default.isExecutableFile(atPath: candidate) { executable = candidate }
            directory = directory.deletingLastPathComponent()
        }
        for _ in 0..<rounds {
            let process = try SpawnedProcess(executable, ["append", input, "--data", dir + "/store", "--batch-size", "50"])
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...700, using: &random)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        // Run to completion: nothing rejected; whatever was stored before is a duplicate.
        let (finalStatus, out, err) = try runBackorder(["append", input, "--data", dir + "/store", "--json"])
        #expect(finalStatus == 0, "\(err)")
        #expect(out.contains("\"rejected\":0"), "\(out.prefix(300))")
        let (againStatus, again, _) = try runBackorder(["append", input, "--data", dir + "/store", "--json"])
        #expect(againStatus == 0 && again.contains("\"appended\":0") && again.contains("\"duplicates\":6000"), "\(again.prefix(300))")
        // Exactly the input's events, each once, and every stream dense from version 1.
        let store = try await EventStore.open(at: dir + "/store")
        var ids = Set<EventID>(), streams = Set<String>()
        let all = try allStoredEvents(store), total = all.count
        for event in all {
            #expect(ids.insert(event.id).inserted, "event \(event.id) stored twice")
            streams.insert(event.tenant + "\u{0}" + event.stream)
        }
        #expect(total == 6000)
        for key in streams {
            let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
            let events = try store.readStream(tenant: parts[0], stream: parts[1])
            #expect(events.map(\.streamVersion) == Array(1...Int64(events.count)))
        }
        try await store.close()
    }
}
