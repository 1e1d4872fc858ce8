/// The log's small manifest file, `MANIFEST`: what a reader must know before it opens a
/// partition. Plain text, one `key value` pair a line, the last line a CRC32C of the
/// others, so that a person can read it and a torn or edited file is detected.
///
/// ```
/// backorder-log 2
/// partitions 8
/// codec lz4
/// segment-bytes 67108864
/// crc32c 3f26dc48
/// ```
public struct Manifest: Sendable, Equatable {
    /// The on-disk format version this build writes: 2, whose batches carry a hash chain.
    public static let currentVersion = 2
    /// The versions this build reads. Version 1 logs (batches without a chain) are read
    /// but never appended to (docs/FORMAT.md, "Versions").
    public static let readableVersions = 1...2
    static let fileName = "MANIFEST"

    /// Format version of the log.
    public var version: Int
    /// Number of partitions; fixed when the log is created.
    public var partitionCount: Int
    /// Codec of new batches.
    public var codec: Codec
    /// Size at which a segment is sealed and a new one started.
    public var segmentBytes: Int
    /// A random identity given to the log when it is created (32 hex digits), so that
    /// derived data (indexes, view snapshots) can tell this log from one put in its place.
    /// Absent in logs created before it existed.
    public var logID: String?

    func encoded() -> [UInt8] {
        var body = "backorder-log \(version)\npartitions \(partitionCount)\ncodec \(codec)\nsegment-bytes \(segmentBytes)\n"
        if let logID { body += "log-id \(logID)\n" }
        let crc = CRC32C.checksum(Array(body.utf8))
        let hex = String(crc, radix: 16)
        return Array((body + "crc32c " + String(repeating: "0", count: 8 - hex.count) + hex + "\n").utf8)
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> Manifest {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw LogError.notALog(path: path, reason: "manifest is not UTF-8 text") }
        guard text.hasSuffix("\n") else { throw LogError.notALog(path: path, reason: "manifest does not end with a newline (torn write?)") }
        var lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        guard let last = lines.popLast(), last.hasPrefix("crc32c "),
              let stored = UInt32(last.dropFirst(7), radix: 16) else {
            throw LogError.notALog(path: path, reason: "manifest has no checksum line")
        }
        let body = lines.map { $0 + "\n" }.joined()
        guard CRC32C.checksum(Array(body.utf8)) == stored else {
            throw LogError.corrupt(path: path, offset: 0, reason: "manifest checksum mismatch")
        }
        var fields: [Substring: Substring] = [:]
        for line in lines {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { throw LogError.notALog(path: path, reason: "malformed manifest line \"\(line)\"") }
            fields[parts[0]] = parts[1]
        }
        guard let version = fields["backorder-log"].flatMap({ Int($0) }) else {
            throw LogError.notALog(path: path, reason: "manifest lacks backorder-log")
        }
        guard readableVersions.contains(version) else { throw LogError.unsupportedVersion(path: path, found: version, supported: currentVersion) }
        guard let partitions = fields["partitions"].flatMap({ Int($0) }), (1...Limits.maxPartitions).contains(partitions),
              let codec = fields["codec"].flatMap({ Codec(name: String($0)) }),
              let segmentBytes = fields["segment-bytes"].flatMap({ Int($0) }),
              (Limits.minSegmentBytes...Limits.maxSegmentBytes).contains(segmentBytes) else {
            throw LogError.notALog(path: path, reason: "manifest fields missing or out of range")
        }
        let logID = fields["log-id"].map(String.init)
        if let logID, logID.count != 32 || !logID.allSatisfy(\.isHexDigit) {
            throw LogError.notALog(path: path, reason: "malformed log-id \(logID)")
        }
        return Manifest(version: version, partitionCount: partitions, codec: codec, segmentBytes: segmentBytes, logID: logID)
    }
}
