import EventLog

/// The byte layout of a table file (docs/KVSTORE.md, "Table file"): blocks, each followed
/// by a 5-byte trailer, then a 48-byte footer.
enum TableFormat {
    /// "BKVTBL01" read as a little-endian u64.
    static let magic: UInt64 = 0x3130_4C42_5456_4B42
    static let version: UInt32 = 1
    static let footerBytes = 48
    /// Codec byte and CRC32C after every block's payload.
    static let trailerBytes = 5
    /// Codec bytes of a block trailer.
    static let rawBlock: UInt8 = 0
    static let lz4Block: UInt8 = 1

    /// Where a block is: its payload's offset and size (the trailer follows).
    struct Handle: Equatable, Sendable {
        var offset: Int64
        var size: Int

        /// The handle as two varints (an index entry's value).
        func encode(into out: inout [UInt8]) {
            ByteCoding.appendVarint(UInt64(offset), to: &out)
            ByteCoding.appendVarint(UInt64(size), to: &out)
        }

        static func decode(_ bytes: UnsafeRawBufferPointer) -> Handle? { decodeIndexValue(bytes)?.handle }

        /// An index entry's value: the handle, then the block's first key.
        static func decodeIndexValue(_ bytes: UnsafeRawBufferPointer) -> (handle: Handle, firstKey: UnsafeRawBufferPointer)? {
            guard let base = bytes.baseAddress else { return nil }
            var p = 0
            guard let offset = ByteCoding.readVarint(base, &p, end: bytes.count), let size = ByteCoding.readVarint(base, &p, end: bytes.count),
                  offset <= UInt64(Int64.max), size <= UInt64(Int32.max) else { return nil }
            return (Handle(offset: Int64(offset), size: Int(size)), UnsafeRawBufferPointer(rebasing: bytes[p...]))
        }
    }

    struct Footer: Equatable {
        var index: Handle
        var filter: Handle? // nil: the table has no filter

        func encoded() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: footerBytes)
            out.withUnsafeMutableBytes { b in
                guard let base = b.baseAddress else { return }
                ByteCoding.store(magic, to: base, at: 0)
                ByteCoding.store(version, to: base, at: 8)
                ByteCoding.store(UInt32(0), to: base, at: 12)
                ByteCoding.store(UInt64(index.offset), to: base, at: 16)
                ByteCoding.store(UInt32(index.size), to: base, at: 24)
                ByteCoding.store(UInt32(filter?.size ?? 0), to: base, at: 28)
                ByteCoding.store(UInt64(filter?.offset ?? 0), to: base, at: 32)
                ByteCoding.store(UInt32(0), to: base, at: 40)
                ByteCoding.store(CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: 44)), to: base, at: 44)
            }
            return out
        }

        /// Parses and checks a footer read from the end of a file of `fileSize` bytes.
        static func decode(_ bytes: UnsafeRawBufferPointer, path: String, fileSize: Int64) throws -> Footer {
            let at = fileSize - Int64(footerBytes)
            func corrupt(_ reason: String) -> KVError { .corrupt(path: path, offset: at, reason: reason) }
            guard bytes.count == footerBytes, let base = bytes.baseAddress else { throw corrupt("footer missing") }
            guard ByteCoding.load(UInt64.self, from: base, at: 0) == magic else { throw corrupt("no table magic in the footer") }
            guard ByteCoding.load(UInt32.self, from: base, at: 44) == CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: 44)) else {
                throw corrupt("footer checksum mismatch")
            }
            let found = ByteCoding.load(UInt32.self, from: base, at: 8)
            guard found == version else { throw KVError.unsupportedVersion(path: path, found: Int(found), supported: Int(version)) }
            let index = Handle(offset: Int64(ByteCoding.load(UInt64.self, from: base, at: 16)), size: Int(ByteCoding.load(UInt32.self, from: base, at: 24)))
            let filterSize = Int(ByteCoding.load(UInt32.self, from: base, at: 28))
            let filterOffset = Int64(ByteCoding.load(UInt64.self, from: base, at: 32))
            func fits(_ h: Handle) -> Bool { h.offset >= 0 && h.size >= 0 && h.offset + Int64(h.size + trailerBytes) <= at }
            guard fits(index) else { throw corrupt("index block \(index.offset)+\(index.size) lies outside the file") }
            let filter = filterSize == 0 ? nil : Handle(offset: filterOffset, size: filterSize)
            if let filter, !fits(filter) { throw corrupt("filter block \(filter.offset)+\(filter.size) lies outside the file") }
            return Footer(index: index, filter: filter)
        }
    }

    /// Appends a block (compressed when that pays) and its trailer to `out`; returns its handle.
    static func appendBlock(_ raw: UnsafeRawBufferPointer, codec: Codec, offset: Int64, scratch: inout [UInt8], to out: inout [UInt8]) throws -> Handle {
        if codec == .lz4 && raw.count >= 64 {
            let bound = codec.compressBound(raw.count) + 4
            if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
            let written = try scratch.withUnsafeMutableBytes { output in
                output.storeBytes(of: UInt32(raw.count).littleEndian, toByteOffset: 0, as: UInt32.self)
                return try codec.compress(raw, into: UnsafeMutableRawBufferPointer(rebasing: output[4...])) + 4
            }
            if written < raw.count - raw.count / 8 {
                return scratch.withUnsafeBytes { append(UnsafeRawBufferPointer(rebasing: $0[0..<written]), kind: lz4Block, offset: offset, to: &out) }
            }
        }
        return append(raw, kind: rawBlock, offset: offset, to: &out)
    }

    /// Appends a block's payload and its trailer (kind, CRC32C of payload and kind).
    private static func append(_ payload: UnsafeRawBufferPointer, kind: UInt8, offset: Int64, to out: inout [UInt8]) -> Handle {
        out.append(contentsOf: payload)
        out.append(kind)
        let crc = CRC32C.checksum(CollectionOfOne(kind), continuing: CRC32C.checksum(payload))
        withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) }
        return Handle(offset: offset, size: payload.count)
    }

    /// Checks a block read from disk (payload and trailer) and returns its decoded bytes in
    /// a new allocation the caller owns.
    static func decodeBlock(_ stored: UnsafeRawBufferPointer, handle: Handle, path: String) throws -> UnsafeMutableRawBufferPointer {
        try checkBlock(stored, handle: handle, path: path)
        let payload = UnsafeRawBufferPointer(rebasing: stored[0..<handle.size])
        let size = stored[handle.size] == rawBlock ? payload.count : try decompressedSize(payload, handle: handle, path: path)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, size), alignment: 8)
        let target = UnsafeMutableRawBufferPointer(start: out.baseAddress, count: size)
        do { try decode(payload, kind: stored[handle.size], into: target, handle: handle, path: path) } catch {
            out.deallocate()
            throw error
        }
        return target
    }

    /// Checks a block read from disk and decodes it into `buffer` (grown when too small;
    /// the caller owns it): the decoded bytes, valid until `buffer` is next used.
    static func decodeBlock(_ stored: UnsafeRawBufferPointer, handle: Handle, path: String,
                            into buffer: inout UnsafeMutableRawBufferPointer) throws -> UnsafeRawBufferPointer {
        try checkBlock(stored, handle: handle, path: path)
        let payload = UnsafeRawBufferPointer(rebasing: stored[0..<handle.size])
        let size = stored[handle.size] == rawBlock ? payload.count : try decompressedSize(payload, handle: handle, path: path)
        if buffer.count < size {
            buffer.deallocate()
            buffer = .allocate(byteCount: size, alignment: 16)
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size])
        try decode(payload, kind: stored[handle.size], into: target, handle: handle, path: path)
        return UnsafeRawBufferPointer(target)
    }

    /// Checks a stored block's length, checksum and codec (payload and trailer).
    static func checkBlock(_ stored: UnsafeRawBufferPointer, handle: Handle, path: String) throws {
        func corrupt(_ reason: String) -> KVError { .corrupt(path: path, offset: handle.offset, reason: reason) }
        guard stored.count == handle.size + trailerBytes else { throw corrupt("block of \(handle.size) bytes is cut short") }
        let payload = UnsafeRawBufferPointer(rebasing: stored[0..<handle.size])
        let kind = stored[handle.size]
        let expected = UInt32(littleEndian: stored.loadUnaligned(fromByteOffset: handle.size + 1, as: UInt32.self))
        guard CRC32C.checksum(CollectionOfOne(kind), continuing: CRC32C.checksum(payload)) == expected else {
            throw corrupt("block checksum mismatch")
        }
        guard kind == rawBlock || kind == lz4Block else { throw corrupt("unknown block codec \(kind)") }
    }

    /// The size an lz4 block's payload says it decompresses to.
    private static func decompressedSize(_ payload: UnsafeRawBufferPointer, handle: Handle, path: String) throws -> Int {
        guard payload.count >= 4 else { throw KVError.corrupt(path: path, offset: handle.offset, reason: "compressed block without its size") }
        let size = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        guard size <= 64 << 20 else { throw KVError.corrupt(path: path, offset: handle.offset, reason: "compressed block claims \(size) bytes") }
        return size
    }

    /// Copies or decompresses a checked payload into `target`, which has its decoded size.
    private static func decode(_ payload: UnsafeRawBufferPointer, kind: UInt8, into target: UnsafeMutableRawBufferPointer, handle: Handle, path: String) throws {
        if kind == rawBlock {
            if payload.count > 0 { target.copyMemory(from: payload) }
            return
        }
        guard Codec.lz4.decompress(UnsafeRawBufferPointer(rebasing: payload[4...]), into: target) else {
            throw KVError.corrupt(path: path, offset: handle.offset, reason: "block does not decompress to its \(target.count) bytes")
        }
    }
}
