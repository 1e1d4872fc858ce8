#if canImport(Glibc)
import Glibc
#endif

/// Reads NDJSON from a file descriptor in large chunks and hands out one line at a time
/// (without its `\n` or `\r\n`), with 1-based line numbers. Lines may be up to
/// `maxLineBytes`; a longer line is an input error, not a crash.
public struct LineReader {
    /// The longest accepted line; a longer one stops the read with an error naming it.
    public static let maxLineBytes = 4 << 20

    private let fd: Int32
    private let name: String
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    /// The number of the line returned last.
    public private(set) var lineNumber = 0
    /// Bytes consumed so far (for progress).
    public private(set) var bytesRead = 0

    /// Reads from a descriptor the caller owns; `name` is used in error messages.
    public init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
        self.buffer = [UInt8](repeating: 0, count: 1 << 20)
    }

    /// Reads lines from bytes already in memory (a request's body); `name` is used in error
    /// messages. The same length limit holds per line.
    public init(bytes: [UInt8], name: String) {
        self.fd = -1
        self.name = name
        self.buffer = bytes
        self.end = bytes.count
        self.eof = true
        self.bytesRead = bytes.count
    }

    /// Calls `body` with the next line's bytes; returns false at the end of input. A line
    /// longer than `maxLineBytes` is not kept: it is read past in bounded memory and
    /// `tooLong` gets its number and length instead (by default an error, which stops the
    /// read).
    public mutating func next(_ body: (UnsafeRawBufferPointer, Int) throws -> Void,
                              tooLong: (_ line: Int, _ bytes: Int) throws -> Void = { line, bytes in
                                  throw InputError(line: line, field: "", message: LineReader.tooLongMessage(bytes))
                              }) throws -> Bool {
        while true {
            if let newline = newlineIndex() {
                var lineEnd = newline
                if lineEnd > start && buffer[lineEnd - 1] == 13 { lineEnd -= 1 }
                lineNumber += 1
                let (s, e) = (start, lineEnd)
                start = newline + 1
                // Only bytes given whole in memory can hold a line this long here.
                if e - s > Self.maxLineBytes { try tooLong(lineNumber, e - s); return true }
                try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[s..<e]), lineNumber) }
                return true
            }
            if eof {
                guard start < end else { return false }
                lineNumber += 1
                let (s, e) = (start, end)
                start = end
                if e - s > Self.maxLineBytes { try tooLong(lineNumber, e - s); return true }
                try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[s..<e]), lineNumber) }
                return true
            }
            if end - start >= Self.maxLineBytes {
                let bytes = try skipRestOfLine()
                lineNumber += 1
                try tooLong(lineNumber, bytes)
                return true
            }
            try refill()
        }
    }

    /// The index of the first `\n` in the buffered bytes: `memchr`, vectorized, where
    /// `firstIndex(of:)` compared byte by byte: 0.4 % of a `--dry-run`'s samples, where it
    /// took 2.0 % at 220-byte lines (bench/RESULTS.md).
    private func newlineIndex() -> Int? {
        guard start < end else { return nil }
        return buffer.withUnsafeBytes { raw -> Int? in
            guard let base = raw.baseAddress, let found = memchr(base + start, 10, end - start) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
    }

    /// What an over-long line is told.
    public static func tooLongMessage(_ bytes: Int) -> String {
        "line of \(bytes) bytes is longer than the limit of \(maxLineBytes) bytes (read past, not kept: it is not copied to a rejected file)"
    }

    /// Drops the buffered part of an over-long line and reads past the rest of it; returns
    /// its length without the newline.
    private mutating func skipRestOfLine() throws -> Int {
        var bytes = end - start
        start = 0
        end = 0
        while true {
            try refill()
            if let newline = buffer[start..<end].firstIndex(of: 10) {
                bytes += newline - start
                start = newline + 1
                return bytes
            }
            bytes += end - start
            start = end
            if eof { return bytes }
        }
    }

    private mutating func refill() throws {
        if start > 0 {
            buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
            end -= start
            start = 0
        }
        if end == buffer.count {
            precondition(end < Self.maxLineBytes, "LineReader: a line over the limit must have been skipped")
            buffer.append(contentsOf: [UInt8](repeating: 0, count: min(buffer.count, Self.maxLineBytes - buffer.count)))
        }
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return read(fd, base + end, raw.count - end)
        }
        if n < 0 {
            if errno == EINTR { return }
            throw InputError(line: lineNumber + 1, field: "", message: "cannot read \(name): \(String(cString: strerror(errno)))")
        }
        if n == 0 { eof = true }
        end += n
        bytesRead += n
    }
}
