import EventLog
import EventStore
import OutOfStock

/// The newest events of the log, read and written out as Server-Sent Events messages once
/// for every live stream (`LiveStream`). Before, each stream read and decoded every new
/// event itself, so with 1,000 subscribers each event was decoded and written out 1,000
/// times (p99 77–87 ms from an append to its delivery, bench/RESULTS.md).
///
/// The feed keeps the messages of the newest events — at most `capacityBytes` of them —
/// each with its tenant and the positions after it (its `id:`). A stream standing on a
/// *boundary* (the positions before the oldest message kept, or after any message) takes
/// the messages after it; a stream anywhere else — resuming from an older point, or fallen
/// behind what is kept — reads the log itself up to the feed's head, which puts it on a
/// boundary (the log's offsets are dense, so reading every lane to the head ends exactly
/// there). A slow client therefore costs no memory beyond the feed's bound.
final class LiveFeed: Sendable {
    /// One event's message.
    struct Message: Sendable {
        let tenant: String
        /// The positions after the event: the message's `id:`.
        let after: [Int64]
        /// `id: …\nevent: event\ndata: <the event's line>\n\n`
        let bytes: [UInt8]
    }

    private struct State {
        /// The messages kept, oldest first; `messages[k]` has the absolute number `first + k`.
        var messages: [Message] = []
        var first = 0
        var bytes = 0
        /// Boundary → the absolute number of the message after it.
        var boundaries: [[Int64]: Int]
        var head: [Int64]
        var stopped = false
        /// Live streams reading the feed now (`listen`).
        var listeners = 0
    }

    /// How long the feed lets appends gather after it read some (5 ms: well inside the
    /// 50 ms a live stream's subscriber may wait for an event, docs/SERVER.md).
    static let gatherNanoseconds: UInt64 = 5_000_000
    /// The most bytes of messages kept, the oldest going first (their text: the positions
    /// and the index of boundaries add about 150 bytes a message on 8 partitions).
    let capacityBytes: Int
    /// Rings when messages were added, or when the feed stopped.
    let ring = AppendSignal()
    private let state: ConditionLock<State>

    /// A feed starting at `positions` (the log's ends when the server starts).
    init(at positions: [Int64], capacityBytes: Int = 8 << 20) {
        precondition(capacityBytes > 0, "a live feed of \(capacityBytes) bytes")
        self.capacityBytes = capacityBytes
        state = ConditionLock(State(boundaries: [positions: 0], head: positions))
    }

    /// The positions after the newest message; nil once the feed has stopped (streams then
    /// read the log themselves).
    var head: [Int64]? { state.withLock { $0.stopped ? nil : $0.head } }

    /// Appends the live message of `event`, whose resume point is `positions`:
    /// `id: …\nevent: event\ndata: <the event's line>\n\n` (streams reading the log write
    /// the same).
    static func appendMessage(_ event: StoredEvent, after positions: [Int64], to out: inout [UInt8]) throws {
        out += Array("id: ".utf8)
        out += Array(positions.map(String.init).joined(separator: ",").utf8)
        out += Array("\nevent: event\ndata: ".utf8)
        try EventOutput.appendLine(event, to: &out)
        out += [10, 10]
    }

    /// A live stream starts reading the feed; call `stopListening` when it ends. While no
    /// stream listens the feed writes no messages: it moves its head to the log's end
    /// (`skip`), and a stream that comes later reads the log itself up to the head, as any
    /// stream off the feed's boundaries does.
    func listen() { state.withLock { $0.listeners += 1 } }

    func stopListening() {
        state.withLock { s in
            precondition(s.listeners > 0, "LiveFeed: a stream stopped listening that never listened")
            s.listeners -= 1
        }
    }

    /// Drops the messages and stands at `positions` (after events nobody was listening
    /// for) when no stream listens; whether it did.
    private func skip(to positions: [Int64]) -> Bool {
        let skipped = state.withLock { s -> Bool in
            guard s.listeners == 0 else { return false }
            s.first += s.messages.count
            s.messages = []
            s.bytes = 0
            s.boundaries = [positions: s.first]
            s.head = positions
            return true
        }
        // The head moved: whoever waits for it (a stream about to listen) looks again.
        if skipped { ring.ring() }
        return skipped
    }

    /// Whether a stream at `positions` can take its next events from the feed.
    func isBoundary(_ positions: [Int64]) -> Bool {
        state.withLock { !$0.stopped && $0.boundaries[positions] != nil }
    }

    /// The messages after `positions`, oldest first (possibly none), or nil when
    /// `positions` is not a boundary of the messages kept, or the feed has stopped.
    func messages(after positions: [Int64]) -> [Message]? {
        state.withLock { s in
            guard !s.stopped, let next = s.boundaries[positions] else { return nil }
            // A copy of the new messages only: a slice would keep the whole array shared,
            // and the feed's next append would then copy all of it.
            return Array(s.messages[(next - s.first)...])
        }
    }

    /// Adds messages read after the head, and drops the oldest beyond the capacity.
    func add(_ new: [Message]) {
        guard let last = new.last else { return }
        state.withLock { s in
            for message in new {
                s.messages.append(message)
                s.bytes += message.bytes.count
                s.boundaries[message.after] = s.first + s.messages.count
            }
            s.head = last.after
            guard s.bytes > capacityBytes else { return }
            // Down to three quarters at once: the removal moves the rest of the array.
            var drop = 0
            while s.bytes > capacityBytes * 3 / 4 && drop < s.messages.count - 1 {
                s.bytes -= s.messages[drop].bytes.count
                drop += 1
            }
            // The boundaries before the dropped messages go; the one after the last dropped
            // is now the boundary before the oldest message kept.
            s.boundaries = s.boundaries.filter { $0.value >= s.first + drop }
            s.messages.removeFirst(drop)
            s.first += drop
            precondition(s.boundaries.count == s.messages.count + 1, "\(s.boundaries.count) boundaries for \(s.messages.count) messages")
        }
        ring.ring()
    }

    /// Follows the log until the task is cancelled: woken by `appended`, reads what was
    /// appended, in recorded order, and adds its messages. A failure stops the feed (the
    /// streams read the log themselves from then on) and is returned.
    func run(source: any EventSource, appended: AppendSignal, heartbeatSeconds: Double) async -> (any Error)? {
        defer {
            state.withLock { $0.stopped = true }
            ring.ring()
        }
        do {
            let start = state.withLock { $0.head }
            var reader = try RecordedOrderReader(source: source, from: start, to: start)
            while true {
                // The ring count before the cancellation check: `close` cancels, then rings,
                // so a cancellation after this read ends the wait below at once.
                let rings = appended.rings
                if Task.isCancelled { break }
                let ends = try source.endOffsets()
                if ends != reader.positions, skip(to: ends) {
                    // Nobody listens: no message is written for these events.
                    reader = try RecordedOrderReader(source: source, from: ends, to: ends)
                    try? await Task.sleep(nanoseconds: Self.gatherNanoseconds)
                    _ = await appended.wait(after: rings, timeout: heartbeatSeconds)
                    continue
                }
                reader.extend(to: ends)
                var new: [Message] = []
                while let event = try reader.next() {
                    var bytes: [UInt8] = []
                    try Self.appendMessage(event, after: reader.positions, to: &bytes)
                    new.append(Message(tenant: event.tenant, after: reader.positions, bytes: bytes))
                    if new.count == 4_096 {
                        add(new)
                        new = []
                        await Task.yield()
                    }
                }
                let read = !new.isEmpty
                add(new)
                // After a read, let appends gather for a moment: one read and one ring of
                // every live stream per append cost a wake-up each at a server's pace of
                // single-event appends, with no live stream listening or a thousand.
                if read { try? await Task.sleep(nanoseconds: Self.gatherNanoseconds) }
                _ = await appended.wait(after: rings, timeout: heartbeatSeconds)
            }
            return nil
        } catch {
            return error
        }
    }
}
