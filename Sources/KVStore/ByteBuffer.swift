/// A growable byte buffer in manually managed memory, so that a pointer to its bytes stays
/// valid until the buffer is next changed (iterators hand out keys this way).
final class ByteBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 64) {
        self.capacity = max(16, capacity)
        base = .allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Keeps the first `n` bytes.
    @inline(__always)
    func truncate(to n: Int) {
        precondition(n >= 0 && n <= count, "truncate beyond the buffer")
        count = n
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(count + bytes.count)
        if let source = bytes.baseAddress, bytes.count > 0 { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count += bytes.count
    }

    /// Grows the contents by `n` bytes, left for the caller to write: their start.
    @inline(__always)
    func extend(by n: Int) -> UnsafeMutableRawPointer {
        reserve(count + n)
        let start = base + count
        count += n
        return start
    }

    /// Drops the last `n` bytes.
    @inline(__always)
    func shrink(by n: Int) {
        precondition(n >= 0 && n <= count, "shrink beyond the buffer")
        count -= n
    }

    /// Replaces the contents.
    func set(_ bytes: UnsafeRawBufferPointer) {
        count = 0
        append(bytes)
    }

    private func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        var size = capacity
        while size < needed { size *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        grown.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = grown
        capacity = size
    }

    /// A copy of the bytes.
    var array: [UInt8] { Array(bytes) }
}
