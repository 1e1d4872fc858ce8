#if canImport(Glibc)
import Glibc
#endif
import EventLog
import EventStore

/// A stream's identity within the ingestor's cache: tenant and stream name, with a
/// 64-bit FNV-1a hash computed once so that dictionary lookups hash 8 bytes, not strings.
struct StreamKey: Hashable {
    let tenant: String
    let stream: String
    let hash: UInt64

    init(tenant: String, stream: String) {
        self.tenant = tenant
        self.stream = stream
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in tenant.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        h = (h ^ 0) &* 0x0000_0100_0000_01B3
        for byte in stream.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        self.hash = h
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    static func == (a: StreamKey, b: StreamKey) -> Bool {
        a.hash == b.hash && a.stream == b.stream && a.tenant == b.tenant
    }
}

/// A stream's version and state as the ingestor has decided it so far.
struct CachedStream {
    let version: Int64
    let state: StreamState
}

/// How `backorder append` treats its input.
public struct IngestOptions: Sendable {
    /// Append the valid lines and report the invalid ones (default: nothing is appended
    /// when any line is invalid).
    public var skipInvalid = false
    /// Validate only; append nothing.
    public var dryRun = false
    /// Events per append (and so per log batch, per partition).
    public var batchSize = 1_000
    /// For a single-stream input: the stream's version before the first event.
    public var expectVersion: Int64?
    /// Keep at most this many error details (all are counted).
    public var maxReportedErrors = 1_000

    /// The defaults.
    public init() {}
}

/// What an ingest did.
public struct IngestReport: Sendable {
    /// Non-empty lines read.
    public var lines = 0
    /// Events written.
    public var appended = 0
    /// Events whose id was already stored (or repeated in the input): acknowledged, not written.
    public var duplicates = 0
    /// Rejected lines.
    public var rejected = 0
    /// The first `maxReportedErrors` rejections.
    public var errors: [InputError] = []
    /// Ids assigned to lines that had none (line number, id), the first 1,000.
    public var assignedIDs: [(line: Int, id: EventID)] = []
    /// First and last offset written per partition.
    public var ranges: [Int: ClosedRange<Int64>] = [:]
    /// Whether anything was written.
    public var applied = false
    /// The rejected lines as read, with their errors, when `skipInvalid` is set.
    public var rejectedLines: [(line: [UInt8], error: InputError)] = []
}

/// Reads NDJSON, validates every line against the input contract and the domain's rules,
/// and appends the accepted events through the event store — all or nothing by default.
///
/// Validation runs over the whole input before anything is appended, with the state of
/// every stream it touches (read from the store, then kept up to date in memory), so a
/// later line may depend on an earlier one in the same input.
public final class Ingestor {
    private let store: EventStore
    private let options: IngestOptions
    private let parser: InputParser
    private var states: [StreamKey: CachedStream] = [:]
    private var seenIDs = Set<EventID>()
    private var random = SystemRandomNumberGenerator()

    /// An ingestor appending to `store`.
    public init(store: EventStore, options: IngestOptions) throws {
        self.store = store
        self.options = options
        self.parser = try InputParser()
    }

    /// Ingests everything `reader` yields. `progress` is called now and then with the
    /// bytes read and the events appended.
    public func ingest(_ reader: inout LineReader, progress: (Int, Int) -> Void = { _, _ in }) async throws -> IngestReport {
        var report = IngestReport()
        var accepted: [NewEvent] = []
        let now = Self.nowMicroseconds()
        var expectVersion = options.expectVersion
        var singleStream: String?
        while try reader.next({ bytes, line in
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { return }
            report.lines += 1
            let rejectedBefore = report.rejected
            defer {
                if options.skipInvalid && report.rejected > rejectedBefore, let error = report.errors.last {
                    report.rejectedLines.append((Array(bytes), error))
                }
            }
            switch parser.parse(bytes, line: line) {
            case let .failure(error):
                reject(error, &report)
            case let .success(input):
                if let expected = expectVersion {
                    let key = input.tenant + "\u{0}" + input.type.streamName(input.stream)
                    if let single = singleStream, single != key {
                        reject(InputError(line: line, field: "data.\(input.type.streamField.name)", message: "--expect-version applies to a single-stream input, but this line is for another stream"), &report)
                        return
                    }
                    singleStream = key
                    var event = input
                    if event.expectedVersion == nil { event.expectedVersion = expected }
                    expectVersion = nil
                    decide(event, line: line, now: now, into: &accepted, &report)
                } else {
                    decide(input, line: line, now: now, into: &accepted, &report)
                }
            }
        }) {
            if report.lines % 65_536 == 0 { progress(reader.bytesRead, 0) }
        }
        progress(reader.bytesRead, 0)
        if options.dryRun || (report.rejected > 0 && !options.skipInvalid) { return report }
        try await append(accepted, &report, progress: { progress(reader.bytesRead, $0) })
        return report
    }

    private func reject(_ error: InputError, _ report: inout IngestReport) {
        report.rejected += 1
        if report.errors.count < options.maxReportedErrors { report.errors.append(error) }
    }

    /// Checks one event against its stream's state; on success records it and its effect.
    private func decide(_ input: InputEvent, line: Int, now: Int64, into accepted: inout [NewEvent], _ report: inout IngestReport) {
        var input = input
        if let id = input.id {
            if seenIDs.contains(id) || store.storedPosition(of: id) != nil {
                report.duplicates += 1
                return
            }
        } else {
            let id = EventID.random(using: &random)
            input.id = id
            if report.assignedIDs.count < 1_000 { report.assignedIDs.append((line, id)) }
        }
        let stream = input.type.streamName(input.stream)
        let key = StreamKey(tenant: input.tenant, stream: stream)
        do {
            let current = try state(key)
            if let expected = input.expectedVersion, expected != current.version {
                throw InputError(line: line, field: "expectedVersion", message: "stream \(stream) of tenant \(input.tenant) is at version \(current.version), not \(expected)")
            }
            let data = try Decider.decide(input, Decider.Context(stream: current.state, lookup: { [unowned self] name in
                try self.state(StreamKey(tenant: input.tenant, stream: name)).state
            }))
            let id = input.id ?? EventID.random(using: &random)
            seenIDs.insert(id)
            accepted.append(NewEvent(
                id: id, type: input.type.name, schemaVersion: input.type.schemaVersion, tenant: input.tenant, stream: stream,
                businessTime: input.at ?? now, actor: input.actor, correlationId: input.correlationId, data: data.encoded(),
                expectedVersion: .exact(current.version)))
            states[key] = CachedStream(version: current.version + 1, state: current.state.evolved(by: input.type.name, data))
        } catch let violation as Decider.Violation {
            reject(InputError(line: line, field: violation.field, message: violation.rule), &report)
        } catch let error as InputError {
            reject(error, &report)
        } catch {
            reject(InputError(line: line, field: "", message: "\(error)"), &report)
        }
    }

    /// The cached state of a stream, loaded from the store on first use.
    private func state(_ key: StreamKey) throws -> CachedStream {
        if let cached = states[key] { return cached }
        var state = StreamState.none
        let events = try store.readStream(tenant: key.tenant, stream: key.stream)
        for event in events {
            state = state.evolved(by: event.type, try EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion))
        }
        let loaded = CachedStream(version: Int64(events.count), state: state)
        states[key] = loaded
        return loaded
    }

    /// Appends in batches, keeping a few submitted appends in flight so that encoding and
    /// compression of the next batch overlap the flush of the previous one.
    private func append(_ events: [NewEvent], _ report: inout IngestReport, progress: (Int) -> Void) async throws {
        var inFlight: [SubmittedAppend] = []
        var start = 0
        func settle(_ submitted: SubmittedAppend, _ report: inout IngestReport) async throws {
            for outcome in try await submitted.acknowledged() {
                switch outcome {
                case let .appended(position, _):
                    report.appended += 1
                    report.applied = true
                    let range = report.ranges[position.partition]
                    report.ranges[position.partition] = min(range?.lowerBound ?? position.offset, position.offset)...max(range?.upperBound ?? position.offset, position.offset)
                case .duplicate:
                    report.duplicates += 1
                }
            }
            progress(report.appended)
        }
        while start < events.count {
            let chunk = Array(events[start..<min(start + options.batchSize, events.count)])
            start += chunk.count
            inFlight.append(try await store.submit(chunk))
            if inFlight.count >= 4 { try await settle(inFlight.removeFirst(), &report) }
        }
        for submitted in inFlight { try await settle(submitted, &report) }
    }

    static func nowMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }
}
