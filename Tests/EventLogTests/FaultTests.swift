import Foundation
import Synchronization
import Testing
@testable import EventLog

/// The real file system, except that once armed, writes fail with ENOSPC after a budget
/// of bytes — as a disk that fills up part way through a flush.
final class DiskFillingStorage: Storage {
    let base = PosixStorage()
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

    func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        FillingFile(try base.open(path, create: create, writable: writable), storage: self)
    }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    func remove(_ path: String) throws { try base.remove(path) }
    func removeDirectory(_ path: String) throws { try base.removeDirectory(path) }
    func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }
    func lock(_ path: String) throws -> any StorageLock { try base.lock(path) }
}

final class FillingFile: StorageFile {
    let inner: any StorageFile
    let storage: DiskFillingStorage
    init(_ inner: any StorageFile, storage: DiskFillingStorage) {
        self.inner = inner
        self.storage = storage
    }
    var path: String { inner.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        let allowed = storage.charge(bytes.count)
        if allowed > 0 { try inner.write(UnsafeRawBufferPointer(rebasing: bytes[0..<allowed]), at: offset) }
        if allowed < bytes.count { throw LogError.diskFull(path: path) }
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { try inner.read(into: buffer, at: offset) }
    func sync() throws { try inner.sync() }
    func size() throws -> Int64 { try inner.size() }
    func truncate(to size: Int64) throws { try inner.truncate(to: size) }
    func close() { inner.close() }
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
