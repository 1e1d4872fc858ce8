import DataGenerator
import Foundation
@testable import EventLog

/// A deterministic in-memory file system for fault tests (issue 9's simulator starts here).
///
/// Every file has the bytes a reader sees now and the bytes that would survive a power
/// loss (those present at its last `sync`). Directory entries are durable only after the
/// directory is synced. `crash(seed:)` simulates a power cut at the current instant: each
/// write since a file's last sync is kept, torn at a random byte, or lost (in a random
/// order), names revert to their last synced state, and every open handle starts failing
/// with EIO, as the threads of a dead process would. Another `Storage` instance then sees
/// the state after the crash.
final class SimulatedStorage: Storage, @unchecked Sendable {
    final class Inode {
        var current: [UInt8] = []
        var synced: [UInt8] = []
        /// Writes and truncations since the last sync, in order.
        var pending: [(offset: Int, bytes: [UInt8]?, truncate: Int?)] = []
    }

    struct State {
        var inodes: [Int: Inode] = [:]
        var names: [String: Int] = [:]        // path -> inode, as seen now
        var durableNames: [String: Int] = [:] // path -> inode, after the last directory syncs
        var directories: Set<String> = []
        var nextInode = 1
        var generation = 0
        var operations = 0
        /// Crash (power cut) when `operations` reaches this.
        var crashAt: Int?
        var crashSeed: UInt64 = 0
    }

    private let lock = NSLock()
    private var current = State()

    init() {}

    /// Runs `body` on the state under the lock.
    fileprivate func locked<R>(_ body: (inout State) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&current)
    }

    /// Arms a crash after `operations` more writes and syncs.
    func crash(afterOperations operations: Int, seed: UInt64) {
        locked { $0.crashAt = $0.operations + operations; $0.crashSeed = seed }
    }

    /// Cuts the power now.
    func crashNow(seed: UInt64) {
        locked { Self.crash(&$0, seed: seed) }
    }

    var generation: Int { locked { $0.generation } }

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

    func open(_ path: String, create: Bool, writable: Bool) throws -> any StorageFile {
        try locked { s in
            if let id = s.names[path] { return SimulatedFile(storage: self, inode: id, path: path, generation: s.generation) }
            guard create else { throw LogError.io(operation: "open", path: path, errno: ENOENT) }
            let id = s.nextInode
            s.nextInode += 1
            s.inodes[id] = Inode()
            s.names[path] = id
            return SimulatedFile(storage: self, inode: id, path: path, generation: s.generation)
        }
    }

    func createDirectory(_ path: String) throws { locked { _ = $0.directories.insert(path) } }

    func listDirectory(_ path: String) throws -> [String] {
        locked { s in
            s.names.keys.filter { ($0 as NSString).deletingLastPathComponent == path }.map { ($0 as NSString).lastPathComponent }
        }
    }

    func exists(_ path: String) -> Bool { locked { $0.names[path] != nil || $0.directories.contains(path) } }

    func rename(_ from: String, to: String) throws {
        try locked { s in
            guard let id = s.names.removeValue(forKey: from) else { throw LogError.io(operation: "rename", path: from, errno: ENOENT) }
            s.names[to] = id
        }
    }

    func remove(_ path: String) throws { locked { _ = $0.names.removeValue(forKey: path) } }

    func syncDirectory(_ path: String) throws {
        locked { s in
            for (name, _) in s.durableNames where (name as NSString).deletingLastPathComponent == path && s.names[name] == nil {
                s.durableNames[name] = nil
            }
            for (name, id) in s.names where (name as NSString).deletingLastPathComponent == path { s.durableNames[name] = id }
        }
    }

    func lock(_ path: String) throws -> any StorageLock { SimulatedLock() }

    fileprivate func withInode<R>(_ id: Int, _ body: (Inode) throws -> R) rethrows -> R {
        try locked { s in try body(s.inodes[id] ?? Inode()) }
    }
}

final class SimulatedLock: StorageLock {
    func release() {}
}

final class SimulatedFile: StorageFile, @unchecked Sendable {
    let storage: SimulatedStorage
    let inode: Int
    let path: String
    let generation: Int

    init(storage: SimulatedStorage, inode: Int, path: String, generation: Int) {
        self.storage = storage
        self.inode = inode
        self.path = path
        self.generation = generation
    }

    private func alive() throws {
        if storage.tick(generation) { throw LogError.io(operation: "simulated power loss", path: path, errno: EIO) }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        try alive()
        let data = Array(bytes)
        storage.withInode(inode) { node in
            let end = Int(offset) + data.count
            if end > node.current.count { node.current += [UInt8](repeating: 0, count: end - node.current.count) }
            node.current.replaceSubrange(Int(offset)..<end, with: data)
            node.pending.append((Int(offset), data, nil))
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard storage.generation == generation else { throw LogError.io(operation: "pread", path: path, errno: EIO) }
        return storage.withInode(inode) { node in
            let start = min(Int(offset), node.current.count)
            let n = min(buffer.count, node.current.count - start)
            if n > 0 { node.current.withUnsafeBytes { buffer.baseAddress?.copyMemory(from: $0.baseAddress! + start, byteCount: n) } }
            return max(n, 0)
        }
    }

    func sync() throws {
        try alive()
        storage.withInode(inode) { node in
            node.synced = node.current
            node.pending = []
        }
    }

    func size() throws -> Int64 { Int64(storage.withInode(inode) { $0.current.count }) }

    func truncate(to size: Int64) throws {
        try alive()
        storage.withInode(inode) { node in
            let n = Int(size)
            if n < node.current.count { node.current.removeLast(node.current.count - n) } else { node.current += [UInt8](repeating: 0, count: n - node.current.count) }
            node.pending.append((0, nil, n))
        }
    }

    func close() {}
}
