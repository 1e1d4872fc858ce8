import Foundation
@_exported import Spawn

/// What a finished child process left: its exit status and everything it wrote.
package struct ChildOutput: Sendable {
    package let status: Int32
    package let standardOutput: String
    package let standardError: String
}

/// Runs `executable` to completion, its standard input read from `input` (empty when nil).
///
/// Output goes to files, not pipes: a pipe read by `FileHandle` crashes the test process
/// when a signal interrupts the read (Foundation's `readDataToEndOfFile` uses `try!` and
/// does not retry `EINTR`; CI saw it), and reading one pipe to its end before the other
/// deadlocks once the child fills the other's buffer.
package func runChild(_ executable: String, _ arguments: [String], input: String? = nil) throws -> ChildOutput {
    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("child-\(getpid())-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let outPath = scratch + "/stdout", errPath = scratch + "/stderr", inPath = scratch + "/stdin"
    for path in [outPath, errPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    _ = FileManager.default.createFile(atPath: inPath, contents: Data((input ?? "").utf8))

    let process = try SpawnedProcess(executable, arguments, standardInput: inPath, standardOutput: outPath, standardError: errPath)
    process.waitUntilExit()
    return ChildOutput(status: process.terminationStatus,
                       standardOutput: String(decoding: try readWholeFile(outPath), as: UTF8.self),
                       standardError: String(decoding: try readWholeFile(errPath), as: UTF8.self))
}

/// The bytes of the file at `path`, read with `read(2)` and retried on `EINTR`.
package func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ChildProcessError(message: "open \(path): errno \(errno)") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]); continue }
        if n == 0 { return bytes }
        if errno == EINTR { continue }
        throw ChildProcessError(message: "read \(path): errno \(errno)")
    }
}

package struct ChildProcessError: Error, CustomStringConvertible {
    package let message: String
    package var description: String { message }
}

/// The pid of a process that ran and ended: it names no process now (until the kernel hands
/// it out again, which takes a full turn of the pid space).
package func endedProcessID() throws -> Int32 {
    let process = try SpawnedProcess("/bin/true", [])
    process.waitUntilExit()
    return process.processIdentifier
}
