import DataGenerator
import Foundation
import EventLog

/// A deterministic in-memory file system for fault tests (issue 9's simulator starts here).
///
/// Every file has the bytes a reader sees now and the bytes that would survive a power
/// loss (those present at its last `sync`). Directory entries are durable only after the
/// directory is synced. `crash(seed:)` simulates a power cut at the current instant: each
/// write since a file's last sync is kept, torn at a random byte, or lost (in a random
/// order), names revert to their last synced state, and every open handle starts failing
/// with EIO, as the threads of a dead process would. Another `Storage` instance then sees
/// the state after the crash.
///
/// Faults (all seeded, off by default): with `faults.errorProbability` any call fails with
/// ENOSPC or EIO (a failing write may have written a prefix first, as a disk that fills up
/// part way); with `faults.bitFlipProbability` a read returns one flipped bit (the stored
/// bytes stay intact, as a flaky cable or controller). `crashProcess()` kills the "process"
/// without a power cut: open handles die, written data (the page cache) survives.
/// (A library target so that every test target can use it; tests only.)
package final class SimulatedStorage: Storage, @unchecked Sendable {
    package final class Inode {
        package var current: [UInt8] = []
        package var synced: [UInt8] = []
        /// Writes and truncations since the last sync, in order.
        package var pending: [(offset: Int, bytes: [UInt8]?, truncate: Int?)] = []
    }

    package struct State {
        package var inodes: [Int: Inode] = [:]
        package var names: [String: Int] = [:]        // path -> inode, as seen now
        package var durableNames: [String: Int] = [:] // path -> inode, after the last directory syncs
        package var directories: Set<String> = []
        package var nextInode = 1
        package var generation = 0
        package var operations = 0
        /// Crash (power cut) when `operations` reaches this.
        package var crashAt: Int?
        package var crashSeed: UInt64 = 0
        package var faults = FaultPlan()
        package var faultRandom = SplitMix64(seed: 0)
        package var injectedErrors = 0
        package var flippedReads = 0
    }

    /// Probabilities of injected faults, per call.
    package struct FaultPlan {
        package var errorProbability = 0.0
        package var bitFlipProbability = 0.0
        /// When set, bit flips hit only files whose path ends with this.
        package var flipOnlyPathsEndingWith: String?

        package init(errorProbability: Double = 0.0, bitFlipProbability: Double = 0.0, flipOnlyPathsEndingWith: String? = nil) {
            self.errorProbability = errorProbability
            self.bitFlipProbability = bitFlipProbability
            self.flipOnlyPathsEndingWith = flipOnlyPathsEndingWith
        }
    }

    private let lock = NSLock()
    private var current = State()

    package init() {}

    /// Runs `body` on the state under the lock.
    fileprivate func locked<R>(_ body: (inout State) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&current)
    }

    /// Arms a crash after `operations` more writes and syncs.
    package func crash(afterOperations operations: Int, seed: UInt64) {
        locked { $0.crashAt = $0.operations + operations; $0.crashSeed = seed }
    }

    /// Names, sizes and synced sizes of every file, for failure messages.
    package func describe() -> String {
        locked { s in
            s.names.sorted { $0.key < $1.key }.map { name, id in
                let node = s.inodes[id]
                return "\(name) \(node?.current.count ?? -1)/\(node?.synced.count ?? -1)\(s.durableNames[name] == id ? "" : " (name not durable)")"
            }.joined(separator: ", ")
        }
    }

    /// Cuts the power now.
    package func crashNow(seed: UInt64) {
        if traceSim { print("power cut") }
        locked { Self.crash(&$0, seed: seed) }
    }

    package var generation: Int { locked { $0.generation } }

    /// Sets the fault probabilities and reseeds the fault generator.
    package func setFaults(_ plan: FaultPlan, seed: UInt64) {
        locked { $0.faults = plan; $0.faultRandom = SplitMix64(seed: seed) }
    }

    /// Sets the fault probabilities, keeping the generator's sequence.
    package func setFaults(_ plan: FaultPlan) { locked { $0.faults = plan } }

    /// Errors injected and reads flipped so far.
    package var faultCounts: (errors: Int, flips: Int) { locked { ($0.injectedErrors, $0.flippedReads) } }

    /// The process dies (kill -9): every open handle fails from now on, but what was
    /// written stays, synced or not, as in the page cache of a machine that keeps running.
    package func crashProcess() {
        if traceSim { print("process crash") }
        locked { $0.generation += 1; $0.crashAt = nil } }

    /// Draws whether this call fails; returns the errno to fail with.
    fileprivate func drawError() -> Int32? {
        locked { s in
            guard s.faults.errorProbability > 0,
                  Double.random(in: 0..<1, using: &s.faultRandom) < s.faults.errorProbability else { return nil }
            s.injectedErrors += 1
            return Bool.random(using: &s.faultRandom) ? ENOSPC : EIO
        }
    }

    /// Throws an injected error for `operation` on `path`, if one is drawn.
    fileprivate func maybeFail(_ operation: String, _ path: String) throws {
        if let code = drawError() { if traceSim { print("inject \(code) \(operation) \(path)") }
            throw LogError.fromErrno(code, operation: operation + " (injected)", path: path) }
    }

    /// A random number below `bound` from the fault generator.
    fileprivate func drawFaultNumber(below bound: Int) -> Int {
        locked { bound <= 0 ? 0 : Int.random(in: 0..<bound, using: &$0.faultRandom) }
    }

    /// Draws whether this read gets a flipped bit.
    fileprivate func drawFlip(_ path: String) -> Bool {
        locked { s in
            guard s.faults.bitFlipProbability > 0, s.faults.flipOnlyPathsEndingWith.map(path.hasSuffix) ?? true,
                  Double.random(in: 0..<1, using: &s.faultRandom) < s.faults.bitFlipProbability else { return false }
            s.flippedReads += 1
            return true
        }
    }

    private static func crash(_ s: inout State, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for (_, inode) in s.inodes {
            var content = inode.synced
            for op in inode.pending {
                switch Int.random(in: 0..<3, using: &random) {
                case 0: continue // lost
                case 1: apply(op, to: &content, tearAt: nil)
                default: apply(op, to: &content, tearAt: Int.random(in: 0...max(0, (op.bytes?.count ?? 0)), using: &random))
                }
            }
            inode.current = content
            inode.synced = content
            inode.pending = []
        }
        s.names = s.durableNames
        s.generation += 1
        s.crashAt = nil
    }

    private static func apply(_ op: (offset: Int, bytes: [UInt8]?, truncate: Int?), to content: inout [UInt8], tearAt: Int?) {
        if let size = op.truncate {
            if size < content.count { content.removeLast(content.count - size) } else { content += [UInt8](repeating: 0, count: size - content.count) }
            return
        }
        guard let bytes = op.bytes else { return }
        let count = min(tearAt ?? bytes.count, bytes.count)
        if op.offset + count > content.count { content += [UInt8](repeating: 0, count: op.offset + count - content.count) }
        content.replaceSubrange(op.offset..<(op.offset + count), with: bytes[0..<count])
    }

    /// Counts an operation; true when the power is (now) off for this generation.
    fileprivate func tick(_ generation: Int) -> Bool {
        locked { s in
            if s.generation != generation { return true }
            s.operations += 1
            if let at = s.crashAt, s.operations >= at {
                Self.crash(&s, seed: s.crashSeed)
                return true
            }
            return false
        }
    }

    package func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        try maybeFail("open", path)
        return try locked { s in
            if let id = s.names[path] { return SimulatedFile(storage: self, inode: id, path: path, generation: s.generation) }
            guard create else { throw LogError.io(operation: "open", path: path, errno: ENOENT) }
            let id = s.nextInode
            s.nextInode += 1
            s.inodes[id] = Inode()
            s.names[path] = id
            return SimulatedFile(storage: self, inode: id, path: path, generation: s.generation)
        }
    }

    package func createDirectory(_ path: String) throws {
        try maybeFail("mkdir", path)
        locked { _ = $0.directories.insert(path) }
    }

    package func listDirectory(_ path: String) throws -> [String] {
        try maybeFail("opendir", path)
        // Files and subdirectories, as readdir lists them (directories are kept apart from
        // files here, and never lost: the simulator models lost names of files only).
        return locked { s in
            (s.names.keys.filter { ($0 as NSString).deletingLastPathComponent == path }
                + s.directories.filter { ($0 as NSString).deletingLastPathComponent == path })
                .map { ($0 as NSString).lastPathComponent }
        }
    }

    package func exists(_ path: String) -> Bool { locked { $0.names[path] != nil || $0.directories.contains(path) } }

    package func rename(_ from: String, to: String) throws {
        try maybeFail("rename", to)
        try locked { s in
            guard let id = s.names.removeValue(forKey: from) else { throw LogError.io(operation: "rename", path: from, errno: ENOENT) }
            s.names[to] = id
        }
    }

    package func remove(_ path: String) throws {
        try maybeFail("unlink", path)
        locked { _ = $0.names.removeValue(forKey: path) }
    }

    package func removeDirectory(_ path: String) throws {
        try maybeFail("rmdir", path)
        locked { _ = $0.directories.remove(path) }
    }

    package func syncDirectory(_ path: String) throws {
        try maybeFail("fsync directory", path)
        locked { s in
            for (name, _) in s.durableNames where (name as NSString).deletingLastPathComponent == path && s.names[name] == nil {
                s.durableNames[name] = nil
            }
            for (name, id) in s.names where (name as NSString).deletingLastPathComponent == path { s.durableNames[name] = id }
        }
    }

    package func lock(_ path: String) throws -> any StorageLock {
        try maybeFail("open lock file", path)
        return SimulatedLock()
    }

    fileprivate func withInode<R>(_ id: Int, _ body: (Inode) throws -> R) rethrows -> R {
        try locked { s in try body(s.inodes[id] ?? Inode()) }
    }
}

package final class SimulatedLock: StorageLock {
    package func release() {}
}

package final class SimulatedFile: StorageFile, @unchecked Sendable {
    package let storage: SimulatedStorage
    package let inode: Int
    package let path: String
    package let generation: Int

    package init(storage: SimulatedStorage, inode: Int, path: String, generation: Int) {
        self.storage = storage
        self.inode = inode
        self.path = path
        self.generation = generation
    }

    private func alive() throws {
        if storage.tick(generation) { throw LogError.io(operation: "simulated power loss", path: path, errno: EIO) }
    }

    package func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        try alive()
        var data = Array(bytes)
        let injected = storage.drawError()
        if injected != nil { data = Array(data.prefix(storage.drawFaultNumber(below: data.count + 1))) }
        storage.withInode(inode) { node in
            let end = Int(offset) + data.count
            if end > node.current.count { node.current += [UInt8](repeating: 0, count: end - node.current.count) }
            node.current.replaceSubrange(Int(offset)..<end, with: data)
            node.pending.append((Int(offset), data, nil))
        }
        if let injected { throw LogError.fromErrno(injected, operation: "pwrite (injected)", path: path) }
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard storage.generation == generation else { throw LogError.io(operation: "pread", path: path, errno: EIO) }
        try storage.maybeFail("pread", path)
        let n = storage.withInode(inode) { node in
            let start = min(Int(offset), node.current.count)
            let n = min(buffer.count, node.current.count - start)
            if n > 0 { node.current.withUnsafeBytes { buffer.baseAddress?.copyMemory(from: $0.baseAddress! + start, byteCount: n) } }
            return max(n, 0)
        }
        if n > 0, storage.drawFlip(path) {
            let bit = storage.drawFaultNumber(below: n * 8)
            buffer[bit / 8] ^= UInt8(1 << (bit % 8))
        }
        return n
    }

    package func sync() throws {
        if traceSim { print("sync \(path)") }
        try alive()
        // A failed fdatasync leaves the writes unsynced (a later power cut may lose them).
        try storage.maybeFail("fdatasync", path)
        storage.withInode(inode) { node in
            node.synced = node.current
            node.pending = []
        }
    }

    package func size() throws -> Int64 {
        try storage.maybeFail("fstat", path)
        return Int64(storage.withInode(inode) { $0.current.count })
    }

    package func truncate(to size: Int64) throws {
        try alive()
        try storage.maybeFail("ftruncate", path)
        if traceSim { print("truncate \(path) \(size)") }
        storage.withInode(inode) { node in
            let n = Int(size)
            if n < node.current.count { node.current.removeLast(node.current.count - n) } else { node.current += [UInt8](repeating: 0, count: n - node.current.count) }
            node.pending.append((0, nil, n))
        }
    }

    package func close() {}
}

/// BACKORDER_SIM_TRACE=1 prints every injected fault, sync, truncation and crash (to follow a replayed seed).
package let traceSim = ProcessInfo.processInfo.environment["BACKORDER_SIM_TRACE"] != nil

extension SimulatedStorage {
    /// The storage as one process sees it. After a power cut or a kill (a new generation)
    /// every operation of this view fails, by path as by open file: a dead process does
    /// nothing more. Without it, a store's background work that outlived its "process" in
    /// a test (a compaction removing a table it had made obsolete) would reach the restored
    /// files, which no real crash allows.
    package func currentProcess() -> any Storage { ProcessStorage(storage: self, generation: generation) }
}

/// `SimulatedStorage.currentProcess()`: forwards every operation while its generation is
/// the storage's, and fails it (EIO) after.
package final class ProcessStorage: Storage, @unchecked Sendable {
    private let storage: SimulatedStorage
    private let generation: Int

    init(storage: SimulatedStorage, generation: Int) {
        self.storage = storage
        self.generation = generation
    }

    private func alive(_ operation: String, _ path: String) throws {
        guard storage.generation == generation else {
            throw LogError.io(operation: "\(operation) by a process that died in a simulated crash", path: path, errno: EIO)
        }
    }

    package func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        try alive("open", path)
        return try storage.open(path, create: create, writable: writable)
    }

    package func createDirectory(_ path: String) throws {
        try alive("mkdir", path)
        try storage.createDirectory(path)
    }

    package func listDirectory(_ path: String) throws -> [String] {
        try alive("opendir", path)
        return try storage.listDirectory(path)
    }

    package func exists(_ path: String) -> Bool { storage.exists(path) }

    package func rename(_ from: String, to: String) throws {
        try alive("rename", to)
        try storage.rename(from, to: to)
    }

    package func remove(_ path: String) throws {
        try alive("unlink", path)
        try storage.remove(path)
    }

    package func removeDirectory(_ path: String) throws {
        try alive("rmdir", path)
        try storage.removeDirectory(path)
    }

    package func syncDirectory(_ path: String) throws {
        try alive("fsync directory", path)
        try storage.syncDirectory(path)
    }

    package func lock(_ path: String) throws -> any StorageLock {
        try alive("open lock file", path)
        return try storage.lock(path)
    }
}
