import Foundation
import OutOfStock

/// `--rejected`: the lines `--skip-invalid` leaves out, one JSON object per line
/// (`{"line":N,"error":"…","input":"…"}`), written as they are found so that memory does not
/// grow with them. The file is made on the first rejected line, as `PATH.tmp`, and renamed
/// to `PATH` by `finish()`: a run with no rejected line leaves an earlier file as it was.
/// A report file, not data: it is not fsynced.
final class RejectedLinesFile: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var handle: FileHandle?
    private var pending = Data()

    init(path: String) { self.path = path }

    /// Adds one rejected line; throws, naming the file, when it cannot be written (the
    /// first line creates the file at once, so a bad path fails the run before anything
    /// is appended).
    func write(_ line: [UInt8], _ error: InputError) throws {
        try lock.withLock {
            if handle == nil { try open() }
            let text = "{\"line\":\(error.line),\"error\":\(jsonString(error.description)),\"input\":\(jsonString(String(decoding: line, as: UTF8.self)))}\n"
            pending.append(contentsOf: text.utf8)
            if pending.count >= 1 << 20 { try flush() }
        }
    }

    /// Writes what is buffered and puts the file in place (nothing when no line came).
    func finish() throws {
        try lock.withLock {
            guard let handle else { return }
            try flush()
            try handle.close()
            self.handle = nil
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        }
    }

    private func open() throws {
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: nil),
              let opened = FileHandle(forWritingAtPath: path + ".tmp") else {
            throw RejectedLinesError(description: "cannot write the rejected lines to \(path): creating \(path).tmp failed: \(String(cString: strerror(errno)))")
        }
        handle = opened
    }

    private func flush() throws {
        do {
            try handle?.write(contentsOf: pending)
            pending.removeAll(keepingCapacity: true)
        } catch {
            throw RejectedLinesError(description: "cannot write the rejected lines to \(path).tmp: \(error)")
        }
    }
}

struct RejectedLinesError: Error, CustomStringConvertible {
    let description: String
}
