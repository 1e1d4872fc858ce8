/// A partition's recovery point, file `recovery-point` (docs/FORMAT.md, "Recovery point").
///
/// States that every byte of segment `segmentBase` before `position` (and every earlier
/// segment) was on disk when the file was written. On open only the bytes after it are
/// checksummed, so restart time is bounded by the checkpoint interval, not the log's size.
/// Corruption before it is never truncated away: it is an error.
struct RecoveryPoint: Sendable, Equatable {
    static let fileName = "recovery-point"
    static let magic: UInt32 = 0x5052_4B42 // "BKRP"
    static let size = 40

    var segmentBase: Int64
    var position: Int64
    var nextOffset: Int64
    var maxTimestamp: Int64

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            ByteCoding.store(Self.magic, to: base, at: 0)
            ByteCoding.store(UInt32(1), to: base, at: 4)
            ByteCoding.store(segmentBase, to: base, at: 8)
            ByteCoding.store(position, to: base, at: 16)
            ByteCoding.store(nextOffset, to: base, at: 24)
            ByteCoding.store(maxTimestamp, to: base, at: 32)
        }
        let crc = CRC32C.checksum(bytes)
        var framed = bytes
        withUnsafeBytes(of: crc.littleEndian) { framed.append(contentsOf: $0) }
        return framed
    }

    /// nil when the bytes are not a valid recovery point (then the caller scans the
    /// whole last segment, which is always safe, only slower).
    static func decode(_ bytes: [UInt8]) -> RecoveryPoint? {
        guard bytes.count == size + 4 else { return nil }
        return bytes.withUnsafeBytes { raw -> RecoveryPoint? in
            guard let base = raw.baseAddress,
                  ByteCoding.load(UInt32.self, from: base, at: 0) == magic,
                  ByteCoding.load(UInt32.self, from: base, at: 4) == 1,
                  CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: size)) == ByteCoding.load(UInt32.self, from: base, at: size)
            else { return nil }
            let point = RecoveryPoint(
                segmentBase: ByteCoding.load(Int64.self, from: base, at: 8),
                position: ByteCoding.load(Int64.self, from: base, at: 16),
                nextOffset: ByteCoding.load(Int64.self, from: base, at: 24),
                maxTimestamp: ByteCoding.load(Int64.self, from: base, at: 32))
            guard point.segmentBase >= 0, point.position >= 0, point.nextOffset >= point.segmentBase else { return nil }
            return point
        }
    }
}

extension Storage {
    /// Replaces `directory/name` with `bytes` atomically and durably: write a temporary
    /// file, fdatasync it, rename it over the old one, fsync the directory.
    public func writeAtomically(_ bytes: [UInt8], directory: String, name: String) throws {
        let temporary = directory + "/" + name + ".tmp"
        let file = try open(temporary, create: true, writable: true)
        defer { file.close() }
        try file.truncate(to: 0)
        try bytes.withUnsafeBytes { (raw) throws in try file.write(raw, at: 0) }
        try file.sync()
        try rename(temporary, to: directory + "/" + name)
        try syncDirectory(directory)
    }

    /// The whole content of a file, or nil when it does not exist.
    package func readWholeFile(_ path: String, limit: Int64 = 64 << 20) throws -> [UInt8]? {
        guard exists(path) else { return nil }
        let file = try open(path, create: false, writable: false)
        defer { file.close() }
        let size = try file.size()
        guard size <= limit else { throw LogError.corrupt(path: path, offset: 0, reason: "file of \(size) bytes is larger than the \(limit) bytes such a file can be") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = try bytes.withUnsafeMutableBytes { (raw) throws in try file.read(into: raw, at: 0) }
        bytes.removeLast(bytes.count - n)
        return bytes
    }
}
