import Foundation
import Synchronization
import Testing
@testable import EventLog
import TestSupport

/// The real file system, except that once armed, writes fail with ENOSPC after a budget
/// of bytes — as a disk that fills up part way through a flush.
final class DiskFillingStorage: ForwardingStorage, @unchecked Sendable {
    let budget = Mutex<Int?>(nil)

    func arm(bytes: Int) { budget.withLock { $0 = bytes } }
    func disarm() { budget.withLock { $0 = nil } }

    /// Charges `count` bytes; false when the disk is full (a partial write may have happened).
    func charge(_ count: Int) -> Int {
        budget.withLock { left in
            guard let remaining = left else { return count }
            let allowed = min(remaining, count)
            left = remaining - allowed
            return allowed
        }
    }

    override func wrap(_ file: any StorageFile, path: String) -> any StorageFile { FillingFile(file, storage: self) }
}

final class FillingFile: ForwardingFile, @unchecked Sendable {
    let storage: DiskFillingStorage
    init(_ inner: any StorageFile, storage: DiskFillingStorage) {
        self.storage = storage
        super.init(inner)
    }
    override func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        let allowed = storage.charge(bytes.count)
        if allowed > 0 { try inner.write(UnsafeRawBufferPointer(rebasing: bytes[0..<allowed]), at: offset) }
        if allowed < bytes.count { throw LogError.diskFull(path: path) }
    }
}

@Suite struct FaultTests {
    @Test func fullDiskFailsAppendsClearlyAndLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = DiskFillingStorage()
        var random = SeededRandom(seed: 11)
        var acknowledged = 0
        for round in 0..<12 {
            let log = try await WriteAheadLog.open(at: dir.path, options: options(segmentBytes: 64 << 10), storage: storage)
            #expect(try log.endOffset(partition: 0) == Int64(acknowledged), "round \(round): the reopened log holds exactly what was acknowledged")
            storage.arm(bytes: Int.random(in: 0..<200_000, using: &random))
            var failure: LogError?
            while failure == nil {
                do {
                    let acks = try await appendSamples(log, acknowledged..<(acknowledged + 25), batchSize: 25)
                    acknowledged += acks.reduce(0) { $0 + $1.recordCount }
                } catch let error as LogError {
                    failure = error
                }
            }
            let error = try #require(failure)
            guard case .diskFull = error else { Issue.record("expected disk full, got \(error)"); return }
            #expect(error.description.contains("disk full"))
            // Later appends fail too, naming the first failure, until the log is reopened.
            await #expect(throws: LogError.self) { try await appendSamples(log, 0..<1, batchSize: 1) }
            // Close says so too: the partition's writer failed, so its last appends may not be durable.
            await #expect(throws: LogError.self) { try await log.close() }
            storage.disarm()
            let check = try await WriteAheadLog.open(at: dir.path, options: options(writable: false))
            #expect(try readAll(check) == (0..<acknowledged).map(sampleRecord))
        }
        #expect(acknowledged > 1_000)
    }
}
