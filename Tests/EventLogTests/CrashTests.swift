import Foundation
import Testing
@testable import EventLog
@testable import BackorderCLI
import TestSupport

/// A child `backorder log crash-writer` process and the acknowledgements it printed.
///
/// Its standard output goes to a file read after it exits (see TestSupport's `runChild`
/// for why not a pipe).
final class WriterProcess: @unchecked Sendable {
    let process: SpawnedProcess
    private let outputPath: String

    init(logDirectory: String, writer: Int, seed: UInt64, events: Int? = nil, reopenEvery: Int = 0) throws {
        var arguments = ["log", "crash-writer", "--data", logDirectory, "--writer", String(writer), "--seed", String(seed),
                         "--partitions", "2", "--segment-bytes", String(128 << 10)]
        if let events { arguments += ["--events", String(events)] }
        if reopenEvery > 0 { arguments += ["--reopen-every", String(reopenEvery)] }
        outputPath = logDirectory + "/writer\(writer).stdout"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process = try SpawnedProcess(try backorderExecutable(), arguments, standardOutput: outputPath)
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Every "ack partition base count writer first" line printed, complete lines only.
    func acknowledgements() throws -> [CrashAck] {
        process.waitUntilExit()
        let text = String(decoding: try readWholeFile(outputPath), as: UTF8.self)
        try? FileManager.default.removeItem(atPath: outputPath)
        var acks: [CrashAck] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let f = line.split(separator: " ")
            guard f.count == 6, f[0] == "ack", let p = Int(f[1]), let b = Int64(f[2]), let c = Int(f[3]),
                  let w = Int(f[4]), let first = Int(f[5]) else { continue }
            acks.append(CrashAck(partition: p, baseOffset: b, count: c, writer: w, firstSequence: first))
        }
        return acks
    }
}

struct CrashAck: Hashable {
    let partition: Int
    let baseOffset: Int64
    let count: Int
    let writer: Int
    let firstSequence: Int
}

/// Checks that every acknowledged record is in the log, byte for byte, and that
/// everything readable from `from` on (per partition; 0 when absent) is intact — dense
/// offsets, checksums, nothing after a torn tail. Each partition is read once, in order,
/// beside the acknowledgements sorted by offset: memory holds the acknowledgements, not the
/// records, so a soak's log of many gigabytes is checked as cheaply as a small one. Returns
/// the acknowledged records checked and each partition's end (the next call's `from`).
@discardableResult
func verifyAcknowledged(_ acks: [CrashAck], in logPath: String, from: [Int: Int64] = [:]) async throws -> (checked: Int, ends: [Int: Int64]) {
    let log = try await WriteAheadLog.open(at: logPath, options: { var o = LogOptions(); o.writable = false; return o }())
    var checked = 0
    var ends: [Int: Int64] = [:]
    for partition in 0..<log.partitionCount {
        let start = from[partition] ?? 0
        let expected = acks.filter { $0.partition == partition }.sorted { $0.baseOffset < $1.baseOffset }
        #expect(expected.allSatisfy { $0.baseOffset >= start }, "acknowledged records below offset \(start) of partition \(partition), which an earlier call checked")
        var next = expected.startIndex
        var offset = start
        var cursor = try log.cursor(partition: partition, from: start)
        while let batch = try cursor.next() {
            for record in batch.recordList() where record.offset >= start {
                #expect(record.offset == offset, "offsets must be dense: \(record.offset) after \(offset - 1)")
                offset = record.offset + 1
                while next < expected.endIndex && expected[next].baseOffset + Int64(expected[next].count) <= record.offset { next += 1 }
                guard next < expected.endIndex, expected[next].baseOffset <= record.offset else { continue }
                let ack = expected[next]
                let sequence = ack.firstSequence + Int(record.offset - ack.baseOffset)
                #expect(record.value == CrashRecord.value(writer: ack.writer, sequence: sequence),
                        "acknowledged record \(partition)/\(record.offset) altered")
                checked += 1
            }
        }
        // Acknowledged records past the readable end were lost.
        let lost = expected.filter { $0.baseOffset + Int64($0.count) > offset }
        #expect(lost.isEmpty, "acknowledged records lost in partition \(partition) past offset \(offset): \(lost.prefix(3))")
        ends[partition] = offset
    }
    try await log.close()
    return (checked, ends)
}

@Suite(.serialized) struct CrashTests {
    /// kill -9 at random moments; reopen; every acknowledged record must be there.
    @Test func killNineNeverLosesAnAcknowledgedAppend() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let rounds = Int(ProcessInfo.processInfo.environment["BACKORDER_CRASH_ROUNDS"] ?? "") ?? 100
        var random = SeededRandom(seed: 0xC0FFEE)
        var acks: [CrashAck] = []
        var tornTails = 0
        var verified: [Int: Int64] = [:], unverified = 0
        for round in 0..<rounds {
            let child = try WriterProcess(logDirectory: dir.path, writer: round, seed: UInt64(round))
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...120, using: &random)))
            child.kill()
            acks += try child.acknowledgements()
            // Reopen as a writer (recovers, truncates a torn tail), then check everything.
            var options = LogOptions()
            options.lockTimeoutMilliseconds = 5_000
            let log = try await WriteAheadLog.open(at: dir.path + "/log", options: options)
            tornTails += log.recoveryEvents.count
            try await log.close()
            if round % 10 == 9 || round == rounds - 1 {
                // What the last rounds added; all of it once more at the end.
                verified = try await verifyAcknowledged(Array(acks[unverified...]), in: dir.path + "/log", from: verified).ends
                unverified = acks.count
            }
        }
        #expect(acks.count > rounds, "the writers must have been acknowledged before the kills")
        let checked = try await verifyAcknowledged(acks, in: dir.path + "/log").checked
        #expect(checked == acks.reduce(0) { $0 + $1.count })
        print("crash test: \(rounds) kills, \(acks.count) acknowledged batches, \(checked) records checked, \(tornTails) torn tails repaired, 0 lost")
    }

    /// Two processes append to the same partitions at once, each reopening the log often
    /// so that the lock passes between them: no batch is lost or interleaved.
    @Test func twoProcessesAppendingToTheSamePartitionNeverInterleave() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let a = try WriterProcess(logDirectory: dir.path, writer: 1, seed: 1, events: 8_000, reopenEvery: 1)
        let b = try WriterProcess(logDirectory: dir.path, writer: 2, seed: 2, events: 8_000, reopenEvery: 1)
        let acksA = try a.acknowledgements(), acksB = try b.acknowledgements()
        #expect(a.process.terminationStatus == 0)
        #expect(b.process.terminationStatus == 0)
        #expect(acksA.count == 80 && acksB.count == 80, "each writer gets all of its 20 rounds × 4 batches acknowledged")
        // No two acknowledgements claim the same offsets.
        var claimed = Set<String>()
        for ack in acksA + acksB {
            for i in 0..<Int64(ack.count) { #expect(claimed.insert("\(ack.partition)/\(ack.baseOffset + i)").inserted) }
        }
        let checked = try await verifyAcknowledged(acksA + acksB, in: dir.path + "/log").checked
        let log = try await WriteAheadLog.open(at: dir.path + "/log", options: { var o = LogOptions(); o.writable = false; return o }())
        let total = try (0..<log.partitionCount).reduce(Int64(0)) { $0 + (try log.endOffset(partition: $1)) }
        #expect(Int64(checked) == total, "the log holds exactly the acknowledged records")
    }
}
