#if canImport(Glibc)
import Glibc
#endif
import CMallocTuning
import EventLog
import EventStore
import Foundation

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

/// Input lines copied out of the reader, so that another task can parse them.
struct LineChunk: Sendable {
    static let capacity = 4_096
    private(set) var bytes: [UInt8] = []
    private(set) var ends: [Int] = []
    private(set) var lineNumbers: [Int] = []
    /// Lines over `LineReader.maxLineBytes`, by index: their length (their bytes are not kept).
    private(set) var tooLong: [Int: Int] = [:]

    /// Grown as lines come: a chunk reserved whole (1 MiB of bytes) cost a request of one
    /// line over HTTP an mmap and munmap of its own, twice (the empty chunk that ends the
    /// input was reserved too).
    init() {}

    var count: Int { ends.count }

    /// Adds a line unless it is blank.
    mutating func add(_ line: UnsafeRawBufferPointer, line number: Int) {
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { return }
        bytes.append(contentsOf: line)
        ends.append(bytes.count)
        lineNumbers.append(number)
    }

    /// Notes a line too long to keep.
    mutating func addTooLong(bytes length: Int, line number: Int) {
        tooLong[ends.count] = length
        ends.append(bytes.count)
        lineNumbers.append(number)
    }

    func line(_ k: Int) -> ArraySlice<UInt8> { bytes[(k == 0 ? 0 : ends[k - 1])..<ends[k]] }
}

/// A chunk, what parsing made of each of its lines, and what can be known of each line
/// before the lines above it are decided: its fingerprint, and the store's answers for its
/// id and stream. Prepared on another task while the previous chunk is decided, so that
/// the deciding task — the one that must go line by line — does only what needs order.
struct PreparedChunk: Sendable {
    let chunk: LineChunk
    let results: [Result<InputEvent, InputError>]
    /// Per line: `InputEvent.resendFingerprint` of a parsed line (0 for a rejected one).
    let fingerprints: [Int]
    let answers: StoreAnswers
}

extension InputParser {
    /// Parses `chunk`; a line without a tenant gets `tenant` (when this run sets one), as
    /// the ingest decides it; then the store is asked about the lines' ids and streams.
    func prepare(_ chunk: LineChunk, tenant: String?, store: any EventAppender) throws -> PreparedChunk {
        var results: [Result<InputEvent, InputError>] = []
        results.reserveCapacity(chunk.count)
        var fingerprints = [Int](repeating: 0, count: chunk.count)
        var lookups = StoreAnswers.Questions()
        chunk.bytes.withUnsafeBytes { all in
            for k in 0..<chunk.count {
                if let length = chunk.tooLong[k] {
                    results.append(.failure(InputError(line: chunk.lineNumbers[k], field: "", message: LineReader.tooLongMessage(length))))
                    continue
                }
                let start = k == 0 ? 0 : chunk.ends[k - 1]
                var result = parse(UnsafeRawBufferPointer(rebasing: all[start..<chunk.ends[k]]), line: chunk.lineNumbers[k])
                if case var .success(input) = result {
                    if let tenant, !input.tenantGiven { input.tenant = tenant }
                    fingerprints[k] = input.resendFingerprint
                    lookups.ask(about: input, line: k)
                    result = .success(input)
                }
                results.append(result)
            }
        }
        return PreparedChunk(chunk: chunk, results: results, fingerprints: fingerprints, answers: try StoreAnswers(lookups, lines: chunk.count, store: store))
    }
}

/// What the store answered, before the lines were decided, for the ids and streams of a
/// chunk's lines: looked up `window` lines per call, which is much cheaper than one call per
/// line (a key the store's index does not hold costs a cache miss in every file it might
/// be in; together those misses overlap). The answers are as current as one-at-a-time
/// lookups would be for the ingest's own purpose: the store checks every event again
/// when it is appended.
struct StoreAnswers: Sendable {
    /// Lines whose ids and streams are looked up in one call.
    static let window = 256

    /// Per line: nil when not looked up, `.some(nil)` when absent.
    private var positions: [StoredID??]
    private var versions: [Int64??]

    /// What to ask the store: the ids and streams of a chunk's parsed lines (whose tenants
    /// are the ones they are decided for: a line whose tenant will be refused is looked up,
    /// and never asked about), gathered as the lines are parsed.
    struct Questions {
        fileprivate var ids: [(tenant: String, id: EventID)] = [], idLines: [Int] = []
        fileprivate var streams: [(tenant: String, stream: String)] = [], streamLines: [Int] = []

        mutating func ask(about input: InputEvent, line k: Int) {
            precondition(streamLines.last.map { $0 < k } ?? true, "lines are asked about in order")
            if let id = input.id {
                ids.append((input.tenant, id))
                idLines.append(k)
            }
            streams.append((input.tenant, input.streamName))
            streamLines.append(k)
        }
    }

    /// The store's answers to `questions` about a chunk of `lines` lines.
    init(_ questions: Questions, lines: Int, store: any EventAppender) throws {
        positions = Array(repeating: nil, count: lines)
        versions = Array(repeating: nil, count: lines)
        var nextID = 0, nextStream = 0
        while nextStream < questions.streams.count {
            // The questions of `window` lines at a time.
            let windowEnd = questions.streamLines[nextStream] + Self.window
            var idEnd = nextID, streamEnd = nextStream
            while idEnd < questions.ids.count && questions.idLines[idEnd] < windowEnd { idEnd += 1 }
            while streamEnd < questions.streams.count && questions.streamLines[streamEnd] < windowEnd { streamEnd += 1 }
            let found = try store.lookUp(ids: Array(questions.ids[nextID..<idEnd]), streams: Array(questions.streams[nextStream..<streamEnd]))
            precondition(found.positions.count == idEnd - nextID && found.versions.count == streamEnd - nextStream, "the store answered another number of lookups")
            for n in nextID..<idEnd { positions[questions.idLines[n]] = .some(found.positions[n - nextID]) }
            for n in nextStream..<streamEnd { versions[questions.streamLines[n]] = .some(found.versions[n - nextStream]) }
            nextID = idEnd
            nextStream = streamEnd
        }
        precondition(nextID == questions.ids.count, "an id asked about without its stream")
    }

    /// The store's answer for line `k`'s id (nil: not looked up).
    func position(_ k: Int) -> StoredID?? { positions[k] }
    /// The store's answer for line `k`'s stream (nil: not looked up).
    func version(_ k: Int) -> Int64?? { versions[k] }
}

/// An expected version for the whole input (`--expect-version`, a server's `If-Match`): the
/// input must be one stream, and its first event is checked against the given version.
struct SingleStreamCheck {
    var expectVersion: Int64?
    private var stream: StreamKey?
    private var first = true

    init(expectVersion: Int64?) { self.expectVersion = expectVersion }

    /// Checks `input` (the first line gets the input's expected version); the error, if any.
    mutating func check(_ input: inout InputEvent, line: Int) -> InputError? {
        guard let expected = expectVersion else { return nil }
        let key = StreamKey(tenant: input.tenant, stream: input.streamName)
        if let stream, stream != key {
            return InputError(line: line, field: "data.\(input.type.streamField.name)", message: "the input's expected version applies to a single-stream input, but this line is for another stream")
        }
        stream = key
        guard first else { return nil }
        first = false
        if let own = input.expectedVersion, own != expected {
            return InputError(line: line, field: "expectedVersion", message: "is \(own), but the input's expected version is \(expected)")
        }
        input.expectedVersion = expected
        return nil
    }
}

/// An append that failed part way (a full disk, an I/O error): what was stored before it.
public struct IngestFailure: Error, CustomStringConvertible {
    /// The counts and positions of what was appended before the failure.
    public let report: IngestReport
    /// The failure.
    public let underlying: any Error

    public var description: String {
        "\(underlying); \(report.appended) events were stored before the failure (the batches that failed may be stored in part) — appending the same input again is safe for lines that carry an id"
    }
}

/// How `backorder append` treats its input.
public struct IngestOptions: Sendable {
    /// Append the valid lines and report the invalid ones (default: nothing is appended
    /// when any line is invalid).
    public var skipInvalid = false
    /// Validate only; append nothing.
    public var dryRun = false
    /// Events per append (and so per log batch, per partition). Larger batches compress
    /// better: zstd has more of the same names and fields to refer back to (10,000 stores
    /// 1,000,000 generated events in 55 B each, 1,000 in 63 B).
    public var batchSize = 10_000
    /// Store appends submitted and not yet acknowledged. Two of 10,000 events keep every
    /// partition's writer busy; four measured no faster and held 10–45 MB more at peak on
    /// 60 tenants' 1,000,000 events (bench/RESULTS.md).
    public var appendsInFlight = 2
    /// For a single-stream input: the stream's version before the first event.
    public var expectVersion: Int64?
    /// Keep at most this many error details (all are counted).
    public var maxReportedErrors = 1_000
    /// Validated events kept in memory before they are spilled to a temporary file.
    public var memoryEvents = 50_000
    /// Stream states (about 200 bytes each) and event ids (about 40 bytes each, with their
    /// fingerprints) kept in memory while validating; beyond them both move to a scratch
    /// key-value store in the temporary directory, so a long input costs this memory, not
    /// memory per stream. The defaults keep `append --skip-views` of 1,000,000 events near
    /// 200 MB (bench/RESULTS.md).
    public var memoryStreams = 200_000
    public var memoryIDs = 500_000
    /// How far a line's `at` may be ahead of this machine's clock, in µs (default one
    /// hour); a line dated later is rejected. nil: no limit.
    public var maxClockSkew: Int64? = 3_600_000_000
    /// With `skipInvalid`: receives each rejected line as read, with its error, as it is
    /// found (so memory does not grow with the rejected lines); a throw fails the ingest.
    /// nil: the first `maxReportedErrors` are kept in the report.
    public var rejectedLineSink: (@Sendable (_ line: [UInt8], _ error: InputError) throws -> Void)?
    /// Where the spool of validated events and the scratch store of stream states and ids
    /// go (in `temporaryDirectory`), through the one storage interface.
    public var storage: any Storage = PosixStorage()
    public var temporaryDirectory = IngestOptions.defaultTemporaryDirectory
    /// `NSTemporaryDirectory()`, asked once per process: it reads the environment and
    /// builds its string on every call, 1 % of a server's CPU for single-event appends.
    public static let defaultTemporaryDirectory = NSTemporaryDirectory()
    /// The one tenant of this input (a server's request for one tenant): a line without a
    /// tenant belongs to it, a line naming another is rejected. Nil: each line's own
    /// (`default` when it names none).
    public var tenant: String?
    /// The one stream of this input (a server's request for one stream), or nil: a line for
    /// another stream is rejected.
    public var stream: String?
    /// Streams' states shared with the process's other ingests (a server's requests): read
    /// before the records view and the log, and given the states of an append acknowledged
    /// whole. Nil: each ingest loads the streams it touches itself.
    public var sharedStates: StreamStateCache?

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
    /// With `skipInvalid` and no `rejectedLineSink`: the first `maxReportedErrors` rejected
    /// lines as read, with their errors.
    public var rejectedLines: [(line: [UInt8], error: InputError)] = []
    /// Rejected lines handed to the sink or kept in `rejectedLines` (lines over the length
    /// limit are read past, not kept).
    public var rejectedLinesKept = 0
}

/// Reads NDJSON, validates every line against the input contract and the domain's rules,
/// and appends the accepted events through the event store — all or nothing by default.
///
/// Validation runs over the whole input before anything is appended, with the state of
/// every stream it touches (read from the store, then kept up to date in memory), so a
/// later line may depend on an earlier one in the same input.
public final class Ingestor {
    private let store: any EventAppender
    private let options: IngestOptions
    private let parser: InputParser
    private let memory: IngestMemory
    /// States and ids decided before the heap is trimmed for the append (see `ingest`).
    static let trimAfterEntries = 100_000
    private var random = SystemRandomNumberGenerator()
    private let lookup: (any StreamStateLookup)?

    /// An ingestor appending to `store`. `lookup` (a view of the streams' states, such as
    /// the records view) saves reading a stream from the log when it holds the stream at
    /// the version the store's index has.
    public init(store: any EventAppender, options: IngestOptions, lookup: (any StreamStateLookup)? = nil) throws {
        self.store = store
        self.lookup = lookup
        self.options = options
        self.parser = try InputParser()
        self.memory = IngestMemory(streamLimit: options.memoryStreams, idLimit: options.memoryIDs, scratchParent: options.temporaryDirectory,
                                   storage: options.storage)
    }

    /// Ingests everything `reader` yields. `progress` is called now and then with the
    /// bytes read and the events appended.
    ///
    /// Lines are parsed in chunks on another task while the previous chunk is decided, so
    /// parsing (independent per line) and deciding (in order) use both cores.
    public func ingest(_ reader: inout LineReader, progress: (Int, Int) -> Void = { _, _ in }) async throws -> IngestReport {
        guard options.batchSize >= 1 && options.appendsInFlight >= 1 else {
            throw EventStoreError.invalidArgument("IngestOptions: batchSize (\(options.batchSize)) and appendsInFlight (\(options.appendsInFlight)) must be at least 1")
        }
        // What was decided is only true of this input once it is appended: forget it after.
        defer { memory.discard() }
        var report = IngestReport()
        let accepted = AcceptedEvents(memoryLimit: options.memoryEvents, storage: options.storage, directory: options.temporaryDirectory)
        let now = EventStore.wallClockMicroseconds()
        var single = SingleStreamCheck(expectVersion: options.expectVersion)
        var parsers = [parser]
        var pending: Task<PreparedChunk, any Error>?
        var chunkNumber = 0
        let store = self.store, tenant = options.tenant
        do {
            while true {
                var chunk = LineChunk()
                while chunk.count < LineChunk.capacity,
                      try reader.next({ bytes, line in chunk.add(bytes, line: line) }, tooLong: { line, length in chunk.addTooLong(bytes: length, line: line) }) {}
                if chunk.count < LineChunk.capacity && pending == nil {
                    // The whole input in one chunk (a request of a few lines): prepared
                    // here, without a task and a second parser.
                    if chunk.count > 0 { try handle(parser.prepare(chunk, tenant: tenant, store: store), now: now, single: &single, into: accepted, &report) }
                    progress(reader.bytesRead, 0)
                    break
                }
                if parsers.count < 2 { parsers.append(try InputParser()) }
                let parser = parsers[chunkNumber % 2]
                chunkNumber += 1
                let preparing: Task<PreparedChunk, any Error>? = chunk.count == 0 ? nil : Task.detached { try parser.prepare(chunk, tenant: tenant, store: store) }
                let prepared = pending
                pending = preparing
                if let prepared { try handle(try await prepared.value, now: now, single: &single, into: accepted, &report) }
                progress(reader.bytesRead, 0)
                if preparing == nil { break }
            }
        } catch {
            // The chunk being prepared still reads the store: the caller may close it as
            // soon as this throws.
            _ = await pending?.result
            throw error
        }
        if options.dryRun || (report.rejected > 0 && !options.skipInvalid) { return report }
        // The streams' states and the ids decided this input; appending it needs neither,
        // so their memory (and the scratch store's) goes to the store's index and the view
        // that follow the append instead. Freed in the middle of glibc's heap, it is only
        // reused — not returned — unless trimmed: a large input's is (one call, a few ms;
        // 1,000,000 events of 60 tenants then peak at 239–313 MB instead of 320–359 MB,
        // bench/RESULTS.md), a request of a few lines' is not (the server's requests, at
        // most 10,000 lines, stay below the threshold).
        parsers.removeAll()
        let decided = options.sharedStates == nil ? [] : memory.statesInMemory()
        if memory.discard() >= Self.trimAfterEntries { _ = backorder_trim_malloc() }
        let duplicatesDecided = report.duplicates
        try await append(accepted, &report, progress: { progress(reader.bytesRead, $0) })
        // Every event is in the store at the version it was decided at (a failure threw
        // above), so the states decided, and those read, hold at the versions they name —
        // unless the store found one of the ids stored meanwhile (by another request): then
        // the stored event, not this line, is at that version, and nothing is kept.
        if report.duplicates == duplicatesDecided { options.sharedStates?.keep(decided) }
        return report
    }

    /// Decides a prepared chunk's lines in order.
    private func handle(_ parsed: PreparedChunk, now: Int64, single: inout SingleStreamCheck, into accepted: AcceptedEvents, _ report: inout IngestReport) throws {
        let answers = parsed.answers
        for (k, result) in parsed.results.enumerated() {
            let line = parsed.chunk.lineNumbers[k]
            report.lines += 1
            var rejection: InputError?
            switch result {
            case let .failure(error):
                rejection = error
            case .success(var input):
                if let tenant = options.tenant {
                    // A line without a tenant has this one already (`prepare`).
                    if input.tenant != tenant {
                        rejection = InputError(line: line, field: "tenant", message: "\(input.tenant) is not this request's tenant \(tenant); leave it out, or send the line to its own tenant")
                        break
                    }
                }
                if let stream = options.stream, input.streamName != stream {
                    rejection = InputError(line: line, field: "data.\(input.type.streamField.name)",
                                           message: "this line is for stream \(input.streamName), not this request's stream \(stream)")
                    break
                }
                // A resend is acknowledged before any check (and does not use up
                // --expect-version); a reused id with other content is refused.
                let fingerprint = parsed.fingerprints[k]
                switch try input.id.map({ try resend(input, id: $0, fingerprint: fingerprint, line: line, stored: answers.position(k)) }) ?? .new {
                case .duplicate:
                    report.duplicates += 1
                    continue
                case let .conflict(error):
                    rejection = error
                case .new:
                    rejection = try single.check(&input, line: line)
                        ?? decide(input, fingerprint: fingerprint, line: line, now: now, storedVersion: answers.version(k), into: accepted, &report)
                }
            }
            if let rejection {
                reject(rejection, &report)
                if options.skipInvalid && parsed.chunk.tooLong[k] == nil { try keep(Array(parsed.chunk.line(k)), rejection, &report) }
            }
        }
    }

    private enum Resend {
        case new, duplicate, conflict(InputError)
    }

    /// Whether a line's id was used before: by a line accepted earlier in this run, or by a
    /// stored event of its tenant — and if so, whether the line is that event again.
    /// `stored`: the store's answer for the id, when looked up already.
    private func resend(_ input: InputEvent, id: EventID, fingerprint: Int, line: Int, stored storedAnswer: StoredID??) throws -> Resend {
        let scoped = ScopedID(tenant: input.tenant, id: id)
        func conflict(_ original: String) -> Resend {
            .conflict(InputError(line: line, field: "id", message: "event id \(id) of tenant \(input.tenant) is already used by \(original) with other content; a resent event must be the same event, a new event needs a new id"))
        }
        if let known = try memory.fingerprint(of: scoped) {
            return known == fingerprint ? .duplicate : conflict("an earlier line of this input")
        }
        guard let stored = try storedAnswer ?? store.storedPosition(of: id, tenant: input.tenant) else { return .new }
        // Another append's event still in flight may not be readable yet: the append's own
        // check compares this line with it (a duplicate, or an id conflict).
        guard stored.isSettled else { return .new }
        let original = try store.readEvent(at: stored.position)
        return input.isResend(of: original) ? .duplicate : conflict("the event stored at \(stored.position) (\(original.type) of \(original.stream))")
    }

    /// A rejected line for `--skip-invalid`'s file: to the sink, or into the report.
    private func keep(_ line: [UInt8], _ error: InputError, _ report: inout IngestReport) throws {
        if let sink = options.rejectedLineSink {
            try sink(line, error)
        } else if report.rejectedLines.count < options.maxReportedErrors {
            report.rejectedLines.append((line, error))
        } else {
            return
        }
        report.rejectedLinesKept += 1
    }

    private func reject(_ error: InputError, _ report: inout IngestReport) {
        report.rejected += 1
        if report.errors.count < options.maxReportedErrors { report.errors.append(error) }
    }

    /// Checks one event against its stream's state; on success records it and its effect.
    /// `storedVersion`: the store's answer for the line's stream, when looked up already.
    private func decide(_ input: InputEvent, fingerprint: Int, line: Int, now: Int64, storedVersion: Int64?? = nil, into accepted: AcceptedEvents,
                        _ report: inout IngestReport) throws -> InputError? {
        // The line's own id, or a new one (the line itself is not copied to hold it).
        let id: EventID
        if let given = input.id {
            id = given
        } else {
            id = EventID.random(using: &random)
            if report.assignedIDs.count < 1_000 { report.assignedIDs.append((line, id)) }
        }
        if let at = input.at, let skew = options.maxClockSkew, at > now + skew {
            return InputError(line: line, field: "at", message: "\(Timestamp.format(at)) is more than \(skew / 1_000_000) s after this machine's clock (\(Timestamp.format(now))); a time that far ahead is refused (--max-clock-skew SECONDS, or --allow-future-times)")
        }
        let stream = input.streamName
        let key = StreamKey(tenant: input.tenant, stream: stream)
        do {
            let current = try state(key, storedVersion: storedVersion)
            if let expected = input.expectedVersion, expected != current.version {
                throw InputError(line: line, field: "expectedVersion", message: "stream \(stream) of tenant \(input.tenant) is at version \(current.version), not \(expected)")
            }
            let tenant = input.tenant
            let data = try Decider.decide(input, Decider.Context(stream: current.state, lookup: { [unowned self] name in
                try self.state(StreamKey(tenant: tenant, stream: name)).state
            }))
            try memory.insert(ScopedID(tenant: input.tenant, id: id), fingerprint: fingerprint)
            try accepted.append(NewEvent(
                id: id, type: input.type.name, schemaVersion: input.type.schemaVersion, tenant: input.tenant, stream: stream,
                businessTime: input.at ?? now, actor: input.actor, correlationId: input.correlationId, data: data.encoded(),
                expectedVersion: .exact(current.version)))
            try memory.setState(CachedStream(version: current.version + 1, state: current.state.evolved(by: input.type, data)), for: key)
            return nil
        } catch let violation as Decider.Violation {
            return InputError(line: line, field: violation.field, message: violation.rule)
        } catch let error as InputError {
            return error
        }
        // Any other error (the store could not be read, a spill file not written) is not
        // the line's fault: it propagates and fails the ingest, rejecting nothing.
    }

    /// The cached state of a stream, loaded on first use: a stream the store's index does
    /// not know is new; one the shared states or the lookup hold at the index's version is
    /// taken from them (no log read); any other is read from the log and folded.
    private func state(_ key: StreamKey, storedVersion known: Int64?? = nil) throws -> CachedStream {
        if let cached = try memory.state(key) { return cached }
        let indexed = try known ?? store.streamVersion(tenant: key.tenant, stream: key.stream)
        if let version = indexed {
            if version == 0 {
                let new = CachedStream(version: 0, state: .none)
                try memory.setState(new, for: key)
                return new
            }
            if let state = options.sharedStates?.state(key, version: version) {
                let shared = CachedStream(version: version, state: state)
                try memory.setState(shared, for: key)
                return shared
            }
            // A lookup that fails (a view file gone under a compaction) only costs a log read.
            if let found = try? lookup?.state(tenant: key.tenant, stream: key.stream), found.version == version {
                let known = CachedStream(version: version, state: found.state)
                try memory.setState(known, for: key)
                return known
            }
        }
        var state = StreamState.none
        let events = try store.readStream(tenant: key.tenant, stream: key.stream)
        for event in events {
            state = state.evolved(by: event.type, try EventData.decode(event.data, type: event.type, schemaVersion: event.schemaVersion))
        }
        // The index counts another append's events still in flight; the stream reads back
        // only settled ones. Decided now, the line would be checked against a version the
        // stream has left: say so, and a server decides it again once they settle.
        if let indexed, indexed > Int64(events.count) {
            throw EventStoreError.wrongExpectedVersion(tenant: key.tenant, stream: key.stream, expected: .exact(Int64(events.count)), actual: indexed)
        }
        let loaded = CachedStream(version: Int64(events.count), state: state)
        try memory.setState(loaded, for: key)
        return loaded
    }

    /// Appends in batches, keeping a few submitted appends in flight so that encoding and
    /// compression of the next batch overlap the flush of the previous one.
    private func append(_ events: AcceptedEvents, _ report: inout IngestReport, progress: (Int) -> Void) async throws {
        var inFlight: [any PendingAppend] = []
        func settle(_ submitted: any PendingAppend, _ report: inout IngestReport) async throws {
            let settled = await submitted.settled()
            for outcome in settled.outcomes {
                switch outcome {
                case nil:
                    break
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
            if let failure = settled.failure { throw failure }
        }
        do {
            try await events.forEachChunk(of: options.batchSize) { chunk in
                inFlight.append(try await store.submitEvents(chunk))
                if inFlight.count >= options.appendsInFlight { try await settle(inFlight.removeFirst(), &report) }
            }
            while !inFlight.isEmpty { try await settle(inFlight.removeFirst(), &report) }
        } catch {
            // Whatever was submitted before the failure may be stored: count what the store
            // acknowledged, then say so.
            for submitted in inFlight { try? await settle(submitted, &report) }
            throw IngestFailure(report: report, underlying: error)
        }
    }

}
