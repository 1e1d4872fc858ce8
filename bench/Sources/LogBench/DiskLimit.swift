#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the disk can do without the log: sequential `pwrite` of `writeBytes` followed by
/// `fdatasync`, repeated, into a file that was zero-filled and synced first (so that, as
/// in the log's preallocated segments, no flush has to allocate blocks or grow the file).
struct DiskLimit {
    let writeBytes: Int
    let flushes: Int
    let seconds: Double
    /// Nanoseconds of each pwrite + fdatasync pair.
    let latencies: Percentiles
    /// Sequential 1 MiB preads of the same file after its pages were dropped from the
    /// page cache (posix_fadvise DONTNEED), when asked for.
    var readMBPerSecond: Double?

    var megabytesPerSecond: Double { Double(writeBytes * flushes) / seconds / 1e6 }
    var flushesPerSecond: Double { Double(flushes) / seconds }

    static func measure(directory: String, writeBytes: Int, flushes: Int, measureRead: Bool = false) throws -> DiskLimit {
        let path = directory + "/disk-limit.dat"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw errnoError("open", path) }
        defer { close(fd); unlink(path) }

        // Pre-zero the whole file and make it durable, block allocation included.
        let total = writeBytes * flushes
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        var at = 0
        while at < total {
            let n = min(zeros.count, total - at)
            try zeros.withUnsafeBytes { raw in try writeAll(fd, raw.baseAddress!, n, at, path) }
            at += n
        }
        guard fsync(fd) == 0 else { throw errnoError("fsync", path) }

        // Non-zero, incompressible data (a storage layer could special-case zeros).
        var random = SplitMix64(seed: 7)
        var data = [UInt8](repeating: 0, count: writeBytes)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in words.indices { words[i] = random.next() }
        }
        var samples: [UInt64] = []
        samples.reserveCapacity(flushes)
        let start = nowNanoseconds()
        for i in 0..<flushes {
            let t0 = nowNanoseconds()
            try data.withUnsafeBytes { raw in try writeAll(fd, raw.baseAddress!, writeBytes, i * writeBytes, path) }
            guard fdatasync(fd) == 0 else { throw errnoError("fdatasync", path) }
            samples.append(nowNanoseconds() - t0)
        }
        let seconds = Double(nowNanoseconds() - start) / 1e9
        var limit = DiskLimit(writeBytes: writeBytes, flushes: flushes, seconds: seconds, latencies: Percentiles(samples))
        if measureRead {
            _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var offset = 0
            let readStart = nowNanoseconds()
            while offset < total {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, total - offset), off_t(offset)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw errnoError("pread", path) }
                offset += n
            }
            limit.readMBPerSecond = Double(total) / (Double(nowNanoseconds() - readStart) / 1e9) / 1e6
        }
        return limit
    }
}

private func writeAll(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int, _ offset: Int, _ path: String) throws {
    var done = 0
    while done < count {
        let n = pwrite(fd, pointer + done, count - done, off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            throw errnoError("pwrite", path)
        }
        if n == 0 { throw BenchError("pwrite \(path): wrote nothing") }
        done += n
    }
}

/// Nearest-rank percentiles of nanosecond samples.
struct Percentiles: Sendable {
    let sorted: [UInt64]

    init(_ samples: [UInt64]) { sorted = samples.sorted() }

    var count: Int { sorted.count }

    /// The `p`-th percentile (0...100) in milliseconds.
    func ms(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return Double(sorted[min(max(rank, 1), sorted.count) - 1]) / 1e6
    }

    var maxMs: Double { Double(sorted.last ?? 0) / 1e6 }
    var meanMs: Double { sorted.isEmpty ? .nan : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1e6 }
}
