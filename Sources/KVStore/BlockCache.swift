import Synchronization

/// Decompressed blocks (data, index, filter) by table file and offset, least recently used
/// first out, up to a byte budget (docs/KVSTORE.md, "Reading"). Shared by every reader of
/// a store; a block in use stays alive while an iterator holds it, even once evicted.
final class BlockCache: Sendable {
    struct Key: Hashable {
        let table: UInt64
        let offset: Int64
    }

    private struct Node {
        var key: Key
        var block: Block?
        var prev: Int
        var next: Int
    }

    private struct State {
        var index: [Key: Int] = [:]
        var nodes: [Node] = []
        var free: [Int] = []
        var head = -1 // most recently used
        var tail = -1 // least recently used
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    private let capacity: Int
    private let state = Mutex(State())

    init(capacityBytes: Int) { capacity = capacityBytes }

    /// The cached block, or nil (counted as a miss).
    func lookup(_ key: Key) -> Block? {
        state.withLock { s in
            guard let i = s.index[key] else {
                s.misses += 1
                return nil
            }
            s.hits += 1
            Self.unlink(i, &s)
            Self.pushFront(i, &s)
            return s.nodes[i].block
        }
    }

    /// Adds a block, evicting the least recently used ones beyond the budget.
    func insert(_ key: Key, _ block: Block) {
        guard capacity > 0 else { return }
        state.withLock { s in
            if let i = s.index[key] {
                s.bytes -= s.nodes[i].block?.memoryBytes ?? 0
                s.nodes[i].block = block
                s.bytes += block.memoryBytes
                Self.unlink(i, &s)
                Self.pushFront(i, &s)
            } else {
                let node = Node(key: key, block: block, prev: -1, next: -1)
                let i: Int
                if let reused = s.free.popLast() { s.nodes[reused] = node; i = reused } else { s.nodes.append(node); i = s.nodes.count - 1 }
                s.index[key] = i
                s.bytes += block.memoryBytes
                Self.pushFront(i, &s)
            }
            while s.bytes > capacity, s.tail >= 0, s.tail != s.head {
                let victim = s.tail
                Self.unlink(victim, &s)
                s.bytes -= s.nodes[victim].block?.memoryBytes ?? 0
                s.index[s.nodes[victim].key] = nil
                s.nodes[victim].block = nil
                s.free.append(victim)
            }
        }
    }

    /// Drops every block of a table (its file was removed).
    func evict(table: UInt64) {
        state.withLock { s in
            for (key, i) in s.index where key.table == table {
                Self.unlink(i, &s)
                s.bytes -= s.nodes[i].block?.memoryBytes ?? 0
                s.nodes[i].block = nil
                s.index[key] = nil
                s.free.append(i)
            }
        }
    }

    /// Bytes held, hits and misses so far.
    var statistics: (bytes: Int, hits: Int, misses: Int) { state.withLock { ($0.bytes, $0.hits, $0.misses) } }

    private static func unlink(_ i: Int, _ s: inout State) {
        let (prev, next) = (s.nodes[i].prev, s.nodes[i].next)
        if prev >= 0 { s.nodes[prev].next = next } else if s.head == i { s.head = next }
        if next >= 0 { s.nodes[next].prev = prev } else if s.tail == i { s.tail = prev }
        s.nodes[i].prev = -1
        s.nodes[i].next = -1
    }

    private static func pushFront(_ i: Int, _ s: inout State) {
        s.nodes[i].next = s.head
        s.nodes[i].prev = -1
        if s.head >= 0 { s.nodes[s.head].prev = i }
        s.head = i
        if s.tail < 0 { s.tail = i }
    }
}
