/// An iterator over entries in key order, in either direction (memtables, table files,
/// levels, and their merge). Deletions are entries too: `isDeletion` says so, and only the
/// merge's caller decides what they hide.
///
/// A base class with the current entry in stored properties, not a protocol: the merge
/// reads every child's key at every step, and a stored property is read without dynamic
/// dispatch or reference counting. Subclasses implement the moves and set the fields after
/// each; `key` and `value` stay valid until the iterator next moves.
class SortedIterator {
    final var isValid = false
    final var key = UnsafeRawBufferPointer(start: nil, count: 0)
    final var value = UnsafeRawBufferPointer(start: nil, count: 0)
    final var isDeletion = false

    func seekToFirst() throws { preconditionFailure("SortedIterator subclasses implement every move") }
    func seekToLast() throws { preconditionFailure("SortedIterator subclasses implement every move") }
    /// Moves to the first entry with a key ≥ `key`.
    func seek(_ key: UnsafeRawBufferPointer) throws { preconditionFailure("SortedIterator subclasses implement every move") }
    func next() throws { preconditionFailure("SortedIterator subclasses implement every move") }
    func prev() throws { preconditionFailure("SortedIterator subclasses implement every move") }

    /// Copies another iterator's current entry.
    @inline(__always)
    final func publish(_ other: SortedIterator?) {
        guard let other, other.isValid else {
            isValid = false
            return
        }
        isValid = true
        key = other.key
        value = other.value
        isDeletion = other.isDeletion
    }
}

/// Walks a frozen memtable's sorted entries.
final class MemtableIterator: SortedIterator {
    private let table: Memtable
    /// The table's entries in key order (taken once: the first walk sorts them).
    private let sorted: [UInt64]
    private var position: Int

    init(_ table: Memtable) {
        precondition(table.isFrozen, "only a frozen memtable is iterated")
        self.table = table
        sorted = table.sorted
        position = sorted.count
    }

    private func publish() {
        isValid = position >= 0 && position < sorted.count
        guard isValid else { return }
        let ref = sorted[position]
        key = table.key(ref)
        value = table.value(ref)
        isDeletion = table.isDeletion(ref)
    }

    /// Asks for the entry a few steps ahead in the walk's direction (entries sit in the
    /// arena in the order they were written: a flush's walk in key order missed the cache
    /// at almost every entry, one miss after another).
    @inline(__always)
    private func prefetch(_ step: Int) {
        let ahead = position + step * Memtable.prefetchDistance
        if ahead >= 0 && ahead < sorted.count { table.prefetch(sorted[ahead]) }
    }

    override func seekToFirst() { position = 0; publish() }
    override func seekToLast() { position = sorted.count - 1; publish() }
    override func seek(_ key: UnsafeRawBufferPointer) { position = table.lowerBound(key, in: sorted); publish() }
    override func next() { position += 1; prefetch(1); publish() }
    override func prev() { position = position <= 0 ? sorted.count : position - 1; prefetch(-1); publish() }
}

/// Walks a sorted level: files that do not overlap, in key order, each opened when reached.
final class LevelIterator: SortedIterator {
    private let files: [TableHandle]
    private var fileIndex: Int
    private var current: TableIterator?

    init(files: [TableHandle]) {
        self.files = files
        fileIndex = files.count
    }

    private func open(_ index: Int) throws {
        fileIndex = index
        current = index >= 0 && index < files.count ? try files[index].reader().makeIterator() : nil
    }

    override func seekToFirst() throws {
        try open(0)
        try current?.seekToFirst()
        try skipForward()
    }

    override func seekToLast() throws {
        try open(files.count - 1)
        try current?.seekToLast()
        try skipBackward()
    }

    override func seek(_ target: UnsafeRawBufferPointer) throws {
        // The first file whose largest key is ≥ target.
        var low = 0, high = files.count
        while low < high {
            let mid = (low + high) / 2
            if files[mid].info.largest.withUnsafeBytes({ KeyOrder.compare($0, target) }) < 0 { low = mid + 1 } else { high = mid }
        }
        // A seek within the file already open keeps it (no new file iterator).
        if low != fileIndex || current == nil { try open(low) }
        try current?.seek(target)
        try skipForward()
    }

    override func next() throws {
        try current?.next()
        try skipForward()
    }

    override func prev() throws {
        try current?.prev()
        try skipBackward()
    }

    private func skipForward() throws {
        while let current, !current.isValid, fileIndex + 1 < files.count {
            try open(fileIndex + 1)
            try self.current?.seekToFirst()
        }
        publish(current)
    }

    private func skipBackward() throws {
        while let current, !current.isValid, fileIndex > 0 {
            try open(fileIndex - 1)
            try self.current?.seekToLast()
        }
        publish(current)
    }
}

/// Merges iterators ordered newest first into one key order in which each key appears
/// once, with its newest entry (docs/KVSTORE.md, "Reading"): a key present in several
/// children is taken from the lowest-numbered one. Deletions are passed through: the
/// caller decides whether they hide the key (reads) or must be kept (compactions).
///
/// The valid children sit in a binary heap ordered by (key, child number) — reversed key
/// order when walking backward — so a step costs O(log children).
final class MergingIterator: SortedIterator {
    private let children: ContiguousArray<SortedIterator>
    private var heap: ContiguousArray<Int> = []
    private var forward = true
    private let savedKey = ByteBuffer()

    init(_ children: [SortedIterator]) {
        self.children = ContiguousArray(children)
        heap.reserveCapacity(children.count)
    }

    override func seekToFirst() throws {
        for child in children { try child.seekToFirst() }
        rebuild(forward: true)
    }

    override func seekToLast() throws {
        for child in children { try child.seekToLast() }
        rebuild(forward: false)
    }

    override func seek(_ target: UnsafeRawBufferPointer) throws {
        for child in children { try child.seek(target) }
        rebuild(forward: true)
    }

    override func next() throws {
        precondition(isValid, "next() on an invalid merging iterator")
        if forward && !anotherChildHoldsTopKey() {
            // The common case: the key is in one child only. (A compaction merges every
            // entry of its inputs through here: no copy of the key, one comparison fewer.)
            try children[heap[0]].next()
            fixTop()
            publishTop()
            return
        }
        savedKey.set(key)
        let k = savedKey.bytes
        if !forward {
            // Every child moves to its first key > the current one.
            for child in children {
                try child.seek(k)
                if child.isValid && KeyOrder.compare(child.key, k) == 0 { try child.next() }
            }
            rebuild(forward: true)
            return
        }
        while let top = heap.first, KeyOrder.compare(children[top].key, k) == 0 {
            try children[top].next()
            fixTop()
        }
        publishTop()
    }

    override func prev() throws {
        precondition(isValid, "prev() on an invalid merging iterator")
        savedKey.set(key)
        let k = savedKey.bytes
        if forward {
            // Every child moves to its last key < the current one.
            for child in children {
                try child.seek(k)
                if child.isValid { try child.prev() } else { try child.seekToLast() }
            }
            rebuild(forward: false)
            return
        }
        while let top = heap.first, KeyOrder.compare(children[top].key, k) == 0 {
            try children[top].prev()
            fixTop()
        }
        publishTop()
    }

    // MARK: Heap

    /// Whether a child other than the top one is at the top's key. Such a child comes
    /// right after the top in (key, child) order, and the smallest entry below a heap's top
    /// is one of the top's two children: so these two are all there is to compare.
    @inline(__always)
    private func anotherChildHoldsTopKey() -> Bool {
        let n = heap.count
        guard n > 1 else { return false }
        let k = children[heap[0]].key
        if KeyOrder.compare(children[heap[1]].key, k) == 0 { return true }
        return n > 2 && KeyOrder.compare(children[heap[2]].key, k) == 0
    }

    /// Whether child `a` comes before child `b` in the current direction.
    @inline(__always)
    private func before(_ a: Int, _ b: Int) -> Bool {
        let c = KeyOrder.compare(children[a].key, children[b].key)
        if c != 0 { return forward ? c < 0 : c > 0 }
        return a < b
    }

    private func rebuild(forward: Bool) {
        self.forward = forward
        heap.removeAll(keepingCapacity: true)
        for i in children.indices where children[i].isValid { heap.append(i) }
        var i = heap.count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
        publishTop()
    }

    /// After the top child moved: drop it if it ran out, else restore the heap order.
    private func fixTop() {
        if !children[heap[0]].isValid {
            let last = heap.removeLast()
            guard !heap.isEmpty else { return }
            heap[0] = last
        }
        siftDown(0)
    }

    private func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let left = 2 * i + 1
            guard left < n else { return }
            var best = left
            if left + 1 < n && before(heap[left + 1], heap[left]) { best = left + 1 }
            guard before(heap[best], heap[i]) else { return }
            heap.swapAt(i, best)
            i = best
        }
    }

    private func publishTop() { publish(heap.first.map { children[$0] }) }
}
