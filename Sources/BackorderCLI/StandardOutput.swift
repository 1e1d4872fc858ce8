import ArgumentParser
import Foundation

/// Bulk output to standard output through `write(2)`, in 1 MiB pieces: no `String` or
/// `Data` per line. A reader that closes the pipe (`| head`) ends the command quietly
/// (exit 0); any other write error is reported, exit 1.
struct StandardOutput {
    private(set) var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1 << 20) }

    /// Appends a line's bytes and its newline; writes once 1 MiB is buffered.
    mutating func appendLine(_ body: (inout [UInt8]) throws -> Void) throws {
        try body(&buffer)
        buffer.append(10)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Writes everything buffered.
    mutating func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return write(1, base + offset, raw.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw ExitCode(0) }
                printError("error: cannot write standard output: \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
