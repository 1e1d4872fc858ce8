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

    /// Calls `body` with the next line's bytes; returns false at the end of input.
    public mutating func next(_ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws -> Bool {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 10) {
                var lineEnd = newline
                if lineEnd > start && buffer[lineEnd - 1] == 13 { lineEnd -= 1 }
                lineNumber += 1
                let (s, e) = (start, lineEnd)
                start = newline + 1
                try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[s..<e]), lineNumber) }
                return true
            }
            if eof {
                guard start < end else { return false }
                lineNumber += 1
                let (s, e) = (start, end)
                start = end
                try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[s..<e]), lineNumber) }
                return true
            }
            try refill()
        }
    }

    private mutating func refill() throws {
        if start > 0 {
            buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
            end -= start
            start = 0
        }
        if end == buffer.count {
            guard end - start < Self.maxLineBytes else {
                throw InputError(line: lineNumber + 1, field: "", message: "line is longer than \(Self.maxLineBytes) bytes")
            }
            buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
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
