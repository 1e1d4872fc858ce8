#if canImport(Glibc)
import Glibc
#endif
import EventStore
import Foundation

/// Validated events waiting to be appended (the whole input is validated before the
/// first append). Kept in memory up to `memoryLimit` events, then spilled to an unlinked
/// temporary file, so that ingest memory stays bounded whatever the size of the input.
final class AcceptedEvents {
    private let memoryLimit: Int

    private var memory: [NewEvent] = []
    private var fd: Int32 = -1
    private var pending: [UInt8] = []
    private var fileBytes = 0
    /// Events held.
    private(set) var count = 0

    init(memoryLimit: Int) { self.memoryLimit = memoryLimit }

    deinit { if fd >= 0 { close(fd) } }

    func append(_ event: NewEvent) throws {
        count += 1
        if fd < 0 {
            memory.append(event)
            if memory.count > memoryLimit { try spill() }
            return
        }
        Self.encode(event, into: &pending)
        if pending.count >= 4 << 20 { try flush() }
    }

    /// Calls `body` with the events in order, `size` at a time.
    func forEachChunk(of size: Int, _ body: ([NewEvent]) async throws -> Void) async throws {
        if fd < 0 {
            var start = 0
            while start < memory.count {
                try await body(Array(memory[start..<min(start + size, memory.count)]))
                start += size
            }
            return
        }
        try flush()
        var reader = SpillReader(fd: fd, end: fileBytes)
        var chunk: [NewEvent] = []
        chunk.reserveCapacity(size)
        while let event = try reader.next() {
            chunk.append(event)
            if chunk.count == size {
                try await body(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        if !chunk.isEmpty { try await body(chunk) }
    }

    private func spill() throws {
        var template = Array((NSTemporaryDirectory() + "backorder-ingest-XXXXXX").utf8CString)
        fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else { throw InputError(line: 0, field: "", message: "cannot create a temporary file for the validated input: \(String(cString: strerror(errno)))") }
        template.withUnsafeBufferPointer { buffer in _ = buffer.baseAddress.map { unlink($0) } } // gone when closed, even after a crash
        for event in memory { Self.encode(event, into: &pending) }
        memory = []
        try flush()
    }

    private func flush() throws {
        var offset = 0
        while offset < pending.count {
            let n = pending.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pwrite(fd, base + offset, raw.count - offset, off_t(fileBytes + offset))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw InputError(line: 0, field: "", message: "cannot write the temporary file of the validated input: \(String(cString: strerror(errno)))") }
            offset += n
        }
        fileBytes += pending.count
        pending.removeAll(keepingCapacity: true)
    }

    // MARK: Encoding: varint length, then the fields.

    static func encode(_ e: NewEvent, into out: inout [UInt8]) {
        var w = BinaryWriter()
        w.int(Int64(bitPattern: e.id.high)); w.int(Int64(bitPattern: e.id.low))
        w.string(e.type); w.int(Int64(e.schemaVersion)); w.string(e.tenant); w.string(e.stream)
        w.int(e.businessTime); w.string(e.actor); w.optionalString(e.correlationId)
        switch e.expectedVersion {
        case .any: w.int(-1)
        case .noStream: w.int(-2)
        case .exists: w.int(-3)
        case let .exact(n): w.int(n)
        }
        w.int(Int64(e.data.count))
        var body = w.bytes
        body.append(contentsOf: e.data)
        var length = BinaryWriter()
        length.int(Int64(body.count))
        out.append(contentsOf: length.bytes)
        out.append(contentsOf: body)
    }

    /// Reads events back from the spill file through a large buffer.
    struct SpillReader {
        let fd: Int32
        let end: Int
        var buffer: [UInt8] = []
        var at = 0
        var fileOffset = 0

        init(fd: Int32, end: Int) {
            self.fd = fd
            self.end = end
        }

        mutating func next() throws -> NewEvent? {
            if at >= buffer.count && fileOffset >= end { return nil }
            try ensure(10)
            var header = BinaryReader(bytes: Array(buffer[at..<min(at + 10, buffer.count)]))
            let length = Int(try header.int())
            at += header.at
            try ensure(length)
            var r = BinaryReader(bytes: Array(buffer[at..<(at + length)]))
            at += length
            let id = EventID(high: UInt64(bitPattern: try r.int()), low: UInt64(bitPattern: try r.int()))
            let type = try r.string(), schemaVersion = Int(try r.int()), tenant = try r.string(), stream = try r.string()
            let time = try r.int(), actor = try r.string(), correlation = try r.optionalString()
            let expected: ExpectedVersion = switch try r.int() {
            case -1: .any
            case -2: .noStream
            case -3: .exists
            case let n: .exact(n)
            }
            let dataCount = try r.count()
            let data = Array(r.bytes[r.at..<(r.at + dataCount)])
            return NewEvent(id: id, type: type, schemaVersion: schemaVersion, tenant: tenant, stream: stream, businessTime: time,
                            actor: actor, correlationId: correlation, data: data, expectedVersion: expected)
        }

        /// Makes `count` bytes from `at` available (less only at the end of the file).
        private mutating func ensure(_ count: Int) throws {
            if at + count <= buffer.count || fileOffset >= end { return }
            buffer.removeFirst(at)
            at = 0
            let want = max(4 << 20, count)
            let old = buffer.count
            buffer += [UInt8](repeating: 0, count: min(want, end - fileOffset))
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + old, raw.count - old, off_t(fileOffset))
            }
            guard n == buffer.count - old else { throw InputError(line: 0, field: "", message: "cannot read back the validated input") }
            fileOffset += n
        }
    }
}
