import EventLog
import Foundation
import KVStore

/// Where a view's generations live (docs/PROJECTIONS.md, "Files"):
///
/// ```
/// <root>/views/<name>/LOCK          held by whoever maintains the view or swaps a generation
/// <root>/views/<name>/CURRENT       "gen-000003": the generation queries read
/// <root>/views/<name>/gen-000003/   a key-value store (docs/KVSTORE.md)
/// ```
///
/// A rebuild fills a new generation while queries keep reading the current one, then
/// swaps `CURRENT` atomically (a rename) and removes the old generation.
public struct ViewDirectory: Sendable {
    /// `<root>/views/<name>`.
    public let path: String
    let storage: any Storage

    public init(root: String, name: String, storage: any Storage = PosixStorage()) {
        path = root + "/views/" + name
        self.storage = storage
    }

    static let currentName = "CURRENT"
    static let prefix = "gen-"

    /// The current generation's directory name, or nil when there is none (or `CURRENT`
    /// is unreadable, which a writer repairs by starting a new generation).
    public func current() -> String? {
        guard let bytes = try? storage.readWholeFile(path + "/" + Self.currentName) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Self.number(of: text) != nil else { return nil }
        return text
    }

    /// The path of a generation.
    public func path(of generation: String) -> String { path + "/" + generation }

    static func number(of name: String) -> Int? {
        guard name.hasPrefix(prefix), name.count == prefix.count + 6 else { return nil }
        return Int(name.dropFirst(prefix.count))
    }

    static func name(of number: Int) -> String {
        let digits = String(number)
        return prefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// Every generation directory present, oldest first.
    func generations() throws -> [String] {
        guard storage.exists(path) else { return [] }
        return try storage.listDirectory(path).filter { Self.number(of: $0) != nil }.sorted()
    }

    /// A new, unused generation name: one past the newest present and past the current one
    /// (so that it can never be the generation it is to replace).
    public func newGeneration() throws -> String {
        try storage.createDirectory(path)
        let newest = try (generations() + [current()].compactMap { $0 }).compactMap(Self.number(of:)).max() ?? 0
        return Self.name(of: newest + 1)
    }

    /// Makes `generation` the one queries read (atomic and durable).
    public func setCurrent(_ generation: String) throws {
        try storage.writeAtomically(Array((generation + "\n").utf8), directory: path, name: Self.currentName)
    }

    /// Takes the view's lock, waiting up to `timeoutMilliseconds` for another process.
    public func lock(timeoutMilliseconds: Int) throws -> any StorageLock {
        try storage.createDirectory(path)
        let deadline = ContinuousClock.now + .milliseconds(max(0, timeoutMilliseconds))
        while true {
            do { return try storage.lock(path + "/LOCK") } catch LogError.locked(let where_) {
                guard ContinuousClock.now < deadline else {
                    throw ViewError.locked("\(where_): another process is updating or rebuilding this view (waited \(timeoutMilliseconds) ms)")
                }
                usleep(5_000)
            }
        }
    }

    /// The view's lock if it is free now, else nil.
    public func tryLock() -> (any StorageLock)? {
        try? storage.createDirectory(path)
        return try? storage.lock(path + "/LOCK")
    }

    /// Removes a generation's files and directory.
    public func remove(_ generation: String) throws {
        let dir = path(of: generation)
        guard storage.exists(dir) else { return }
        for name in try storage.listDirectory(dir) { try storage.remove(dir + "/" + name) }
        try storage.removeDirectory(dir)
    }

    /// Removes generations that are neither current nor being built (a rebuild holds its
    /// generation's store lock): leftovers of a rebuild that crashed or was stopped. Also
    /// removes the files of the snapshot format before key-value views (`*.snapshot`,
    /// `*.tables`). Call with the view's lock held.
    public func removeLeftovers() throws {
        let current = self.current()
        for generation in try generations() where generation != current {
            guard let lock = try? storage.lock(path(of: generation) + "/LOCK") else { continue }
            lock.release()
            try remove(generation)
        }
        for name in (try? storage.listDirectory(path)) ?? [] where name.hasSuffix(".snapshot") || name.hasSuffix(".tmp") {
            try storage.remove(path + "/" + name)
        }
        for name in (try? storage.listDirectory(path)) ?? [] where name.hasSuffix(".tables") {
            let dir = path + "/" + name
            for file in (try? storage.listDirectory(dir)) ?? [] { try storage.remove(dir + "/" + file) }
            try storage.removeDirectory(dir)
        }
    }
}

/// Why a view cannot be used or maintained right now.
public enum ViewError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process holds the view's lock.
    case locked(String)
    /// The view's checkpoint does not fit the log; it must be rebuilt (the reason says why).
    case needsRebuild(String)
    /// A reader found more events after the view than it may apply in memory.
    case tailTooLarge(events: Int64, limit: Int64)

    public var description: String {
        switch self {
        case let .locked(message): message
        case let .needsRebuild(reason): "the view must be rebuilt from the log: \(reason)"
        case let .tailTooLarge(events, limit):
            "the view is \(events) events behind the log, more than a reader applies in memory (\(limit)); the next `backorder append`, `snapshot` or a query that can take the view's lock brings it up to date"
        }
    }
}
