/// A consistent read view of a store: its files and frozen memtables at one moment
/// (`KVStore.snapshot()`). Immutable and usable from any thread; the files it reads stay
/// on disk while it exists, whatever compactions do meanwhile.
public final class KVSnapshot: Sendable {
    let version: Version
    /// Newest first.
    let frozen: [Memtable]
    /// The owner's metadata this view reflects.
    public let metadata: [UInt8]

    init(version: Version, frozen: [Memtable], metadata: [UInt8]) {
        self.version = version
        self.frozen = frozen
        self.metadata = metadata
    }

    /// Which manifest generation the files come from.
    public var generation: UInt64 { version.generation }

    /// Calls `body` with the value of `key`, or nil when it has none.
    @inlinable
    public func withValue<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        var result: R?
        try visitValue(key) { result = try body($0) }
        return result!
    }

    /// `withValue` without a generic result: specialised at each caller through the
    /// inlinable wrapper, so that no lookup instantiates generic metadata at run time.
    @usableFromInline
    func visitValue(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> Void) throws {
        let hash = KeyHash.of(key)
        for table in frozen {
            if let ref = table.lookup(key, hash: hash) { return try body(table.valueOrDeletion(ref)) }
        }
        try Self.visitValue(in: version, key, hash: hash, body)
    }

    /// Calls `body` with the value of `key` (whose `KeyHash` is `hash`) in the files of
    /// `version`, or nil when they hold none. The caller keeps `version` alive meanwhile.
    static func visitValue(in version: Version, _ key: UnsafeRawBufferPointer, hash: UInt64,
                           _ body: (UnsafeRawBufferPointer?) throws -> Void) throws {
        // Each level-0 run, newest first, then each sorted level, by binary search (a tiered
        // store keeps everything in level 0: tens of runs of many files).
        for run in version.searchRuns {
            if let file = run.file(containing: key), try file.reader().find(key, hash: hash, body) { return }
        }
        try body(nil)
    }

    /// The value of `key`, or nil.
    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in try withValue(k) { $0.map { Array($0) } } }
    }

    /// An iterator over the keys in `[lower, upper)` (nil: unbounded), deletions hidden.
    public func makeIterator(lower: [UInt8]? = nil, upper: [UInt8]? = nil) -> KVIterator {
        var children: [SortedIterator] = frozen.map { MemtableIterator($0) }
        children.append(contentsOf: version.iterators())
        return KVIterator(MergingIterator(children), lower: lower, upper: upper, owner: self)
    }
}

extension TableHandle {
    /// Whether `key` lies in the file's key range.
    func contains(_ key: UnsafeRawBufferPointer) -> Bool {
        info.smallest.withUnsafeBytes { KeyOrder.compare($0, key) <= 0 } && info.largest.withUnsafeBytes { KeyOrder.compare($0, key) >= 0 }
    }
}

/// Walks a snapshot's keys in order, in either direction, within optional bounds
/// `[lower, upper)`; deleted keys are skipped. `key` and `value` are valid until the next
/// move. Not thread-safe: one iterator per task.
public final class KVIterator {
    private let merge: MergingIterator
    private let lower: [UInt8]?
    private let upper: [UInt8]?
    private let owner: KVSnapshot

    init(_ merge: MergingIterator, lower: [UInt8]?, upper: [UInt8]?, owner: KVSnapshot) {
        self.merge = merge
        self.lower = lower
        self.upper = upper
        self.owner = owner
    }

    /// Whether the iterator is at an entry within the bounds.
    public private(set) var isValid = false
    /// The current key.
    public var key: UnsafeRawBufferPointer { merge.key }
    /// The current value.
    public var value: UnsafeRawBufferPointer { merge.value }

    /// Moves to the first key (≥ lower).
    public func seekToFirst() throws {
        if let lower { try lower.withUnsafeBytes { try merge.seek($0) } } else { try merge.seekToFirst() }
        try settleForward()
    }

    /// Moves to the last key (< upper).
    public func seekToLast() throws {
        if let upper { try upper.withUnsafeBytes { try seekBefore($0) } } else {
            try merge.seekToLast()
            try settleBackward()
        }
    }

    /// Moves to the first key ≥ `key` (and ≥ lower).
    public func seek(_ key: UnsafeRawBufferPointer) throws {
        if let lower, lower.withUnsafeBytes({ KeyOrder.compare($0, key) > 0 }) { return try seekToFirst() }
        try merge.seek(key)
        try settleForward()
    }

    /// `seek` with an array.
    public func seek(_ key: [UInt8]) throws { try key.withUnsafeBytes { try seek($0) } }

    /// Moves to the last key < `key` (and < upper).
    public func seekBefore(_ key: UnsafeRawBufferPointer) throws {
        if let upper, upper.withUnsafeBytes({ KeyOrder.compare($0, key) < 0 }) {
            return try upper.withUnsafeBytes { try positionBefore($0) }
        }
        try positionBefore(key)
    }

    private func positionBefore(_ key: UnsafeRawBufferPointer) throws {
        try merge.seek(key)
        if merge.isValid { try merge.prev() } else { try merge.seekToLast() }
        try settleBackward()
    }

    /// `seekBefore` with an array.
    public func seekBefore(_ key: [UInt8]) throws { try key.withUnsafeBytes { try seekBefore($0) } }

    /// Moves to the next key.
    public func next() throws {
        precondition(isValid, "next() on an invalid iterator")
        try merge.next()
        try settleForward()
    }

    /// Moves to the previous key.
    public func prev() throws {
        precondition(isValid, "prev() on an invalid iterator")
        try merge.prev()
        try settleBackward()
    }

    /// Skips deletions forward; stops at the upper bound.
    private func settleForward() throws {
        while merge.isValid && merge.isDeletion { try merge.next() }
        isValid = merge.isValid && (upper.map { u in u.withUnsafeBytes { KeyOrder.compare(merge.key, $0) < 0 } } ?? true)
    }

    /// Skips deletions backward; stops at the lower bound.
    private func settleBackward() throws {
        while merge.isValid && merge.isDeletion { try merge.prev() }
        isValid = merge.isValid && (lower.map { l in l.withUnsafeBytes { KeyOrder.compare(merge.key, $0) >= 0 } } ?? true)
    }
}
