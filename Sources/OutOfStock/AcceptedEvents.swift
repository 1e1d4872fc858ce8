import EventLog
import EventStore
import Foundation

/// Validated events waiting to be appended (the whole input is validated before the
/// first append). Kept in memory up to `memoryLimit` events, then spilled to a temporary
/// file — through `Storage`, and removed as soon as it is open (it is gone when closed,
/// even after a crash) — so that ingest memory stays bounded whatever the input's size.
final class AcceptedEvents {
    private let memoryLimit: Int
    private let storage: any Storage
    private let directory: String

    private var memory: [NewEvent] = []
    private var file: (any StorageFile)?
    private var pending: [UInt8] = []
    private var fileBytes = 0
    /// Events held.
    private(set) var count = 0

    init(memoryLimit: Int, storage: any Storage = PosixStorage(), directory: String = NSTemporaryDirectory()) {
        self.memoryLimit = memoryLimit
        self.storage = storage
        self.directory = directory
    }

    deinit { file?.close() }

    func append(_ event: NewEvent) throws {
        count += 1
        guard file != nil else {
            memory.append(event)
            if memory.count > memoryLimit { try spill() }
            return
        }
        Self.encode(event, into: &pending)
        if pending.count >= 4 << 20 { try flush() }
    }

    /// Calls `body` with the events in order, `size` at a time.
    func forEachChunk(of size: Int, _ body: ([NewEvent]) async throws -> Void) async throws {
        guard let file else {
            var start = 0
            while start < memory.count {
                try await body(Array(memory[start..<min(start + size, memory.count)]))
                start += size
            }
            return
        }
        try flush()
        // The next chunk is read back and decoded on another task while `body` appends
        // this one: the append's checks hold one core, and the other was mostly idle.
        func readAhead(_ reader: SpillReader) -> Task<(SpillReader, [NewEvent]), any Error> {
            Task.detached {
                var reader = reader
                var chunk: [NewEvent] = []
                chunk.reserveCapacity(size)
                while chunk.count < size, let event = try reader.next() { chunk.append(event) }
                return (reader, chunk)
            }
        }
        var next = readAhead(SpillReader(file: file, end: fileBytes))
        do {
            while true {
                let (reader, chunk) = try await next.value
                if chunk.isEmpty { return }
                next = readAhead(reader)
                try await body(chunk)
            }
        } catch {
            // The file is closed with this object: no read may be left running on it.
            _ = await next.result
            throw error
        }
    }

    private func spill() throws {
        let path = directory + "/backorder-ingest-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do {
            file = try storage.open(path, create: true, writable: true)
            try storage.remove(path)
        } catch {
            throw InputError(line: 0, field: "", message: "cannot create a temporary file for the validated input in \(directory): \(error)")
        }
        for event in memory { Self.encode(event, into: &pending) }
        memory = []
        try flush()
    }

    private func flush() throws {
        guard let file, !pending.isEmpty else { return }
        do {
            try pending.withUnsafeBytes { try file.write($0, at: Int64(fileBytes)) }
        } catch {
            throw InputError(line: 0, field: "", message: "cannot write the temporary file of the validated input: \(error)")
        }
        fileBytes += pending.count
        pending.removeAll(keepingCapacity: true)
    }

    // MARK: Encoding: a 32-bit length, then the fields (the spill file is read back only by
    // this process, so its format is free to change).

    static func encode(_ e: NewEvent, into out: inout [UInt8]) {
        // Written in place: no array per event.
        var w = BinaryWriter(appendingTo: &out)
        let lengthAt = w.placeholder32()
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
        w.append(e.data)
        w.patch32(at: lengthAt, UInt32(w.bytes.count - lengthAt - 4))
        w.finish(into: &out)
    }

    /// Reads events back from the spill file through a large buffer.
    struct SpillReader: Sendable {
        let file: any StorageFile
        let end: Int
        var buffer: [UInt8] = []
        var at = 0
        var fileOffset = 0

        init(file: any StorageFile, end: Int) {
            self.file = file
            self.end = end
        }

        mutating func next() throws -> NewEvent? {
            if at >= buffer.count && fileOffset >= end { return nil }
            try ensure(4)
            var header = BinaryReader(bytes: buffer, at: at, end: min(at + 4, buffer.count))
            let length = Int(try header.fixed32())
            at += 4
            try ensure(length)
            guard at + length <= buffer.count else { throw InputError(line: 0, field: "", message: "the validated input's temporary file ends inside an event at \(fileOffset - buffer.count + at)") }
            var r = BinaryReader(bytes: buffer, at: at, end: at + length)
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
            let n = try buffer.withUnsafeMutableBytes { raw in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[old...]), at: Int64(fileOffset))
            }
            guard n == buffer.count - old else { throw InputError(line: 0, field: "", message: "cannot read back the validated input: \(n) of \(buffer.count - old) bytes at \(fileOffset)") }
            fileOffset += n
        }
    }
}
