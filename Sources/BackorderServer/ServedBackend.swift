import Consumers
import EventLog
import EventStore
import Foundation
import JetStreamStore

/// The store a server appends to and reads from (docs/SERVER.md, "On a cluster").
public enum ServedBackend: Sendable {
    /// The embedded log, of which the server is the only writer.
    case embedded(EventStore)
    /// A JetStream stream, to which other processes may append while the server runs.
    case cluster(JetStreamStore)

    /// Opens the store `options` name (recovering the embedded log as `append` does).
    static func open(_ options: ServeOptions) async throws -> ServedBackend {
        if let cluster = options.cluster { return .cluster(try await JetStreamStore.open(cluster)) }
        var storeOptions = StoreOptions()
        storeOptions.log.durability = options.durability
        storeOptions.log.partitionCount = options.partitions
        return .embedded(try await EventStore.open(at: options.directory, options: storeOptions, storage: options.storage))
    }

    /// Where appends go.
    var appender: any EventAppender {
        switch self {
        case let .embedded(store): store
        case let .cluster(store): store
        }
    }

    /// The events in the order the views and live streams read them (one lane per log
    /// partition, or the stream's one lane of sequences).
    var source: any EventSource {
        switch self {
        case let .embedded(store): store.reader
        case let .cluster(store): store.source
        }
    }

    /// The events as live streams and paged reads deliver them, merged by recorded time:
    /// on the embedded log, read only as far as every event recorded earlier has settled
    /// (`EventStore.recordedOrderReader`), so that one request's batches settling on their
    /// partitions in another order never deliver a later event first; a cluster stream has
    /// one lane, in its own order.
    var recordedOrderSource: any EventSource {
        switch self {
        case let .embedded(store): store.recordedOrderReader
        case let .cluster(store): store.source
        }
    }

    /// Where the routes and tasks that use a cluster store run (`BlockingCallPool`): nil
    /// for the embedded log, whose calls never wait for a network.
    var blockingCallPool: BlockingCallPool? {
        if case .cluster = self { return .shared }
        return nil
    }

    /// The events in one lane per partition, for consumer groups.
    var groupSource: any EventSource {
        switch self {
        case let .embedded(store): store.reader
        case let .cluster(store): store.lanes
        }
    }

    /// A stream's acknowledged version (0: none): from the embedded store's index, or asked
    /// of the cluster (one request, off the cooperative pool), which other writers may
    /// have moved.
    func version(tenant: String, stream: String) async throws -> Int64 {
        switch self {
        case let .embedded(store): try store.version(tenant: tenant, stream: stream)
        case let .cluster(store): try await JetStreamStore.onThread { try store.currentVersion(tenant: tenant, stream: stream) }
        }
    }

    /// Every acknowledged event of a stream, in version order, as the store holds it now.
    func readStream(tenant: String, stream: String) async throws -> [StoredEvent] {
        switch self {
        case let .embedded(store): try store.readStream(tenant: tenant, stream: stream)
        case let .cluster(store): try await JetStreamStore.onThread { try store.readCurrentStream(tenant: tenant, stream: stream) }
        }
    }

    /// Why the store takes no more appends, if it stopped (a cluster writer whose publish
    /// failed must be reopened: the server is then not ready).
    var appendFailure: String? {
        if case let .cluster(store) = self { return store.appendFailure }
        return nil
    }

    /// What the store said at open (recovery, index rebuilds; the stream and its replicas).
    var openingNotes: [String] {
        switch self {
        case let .embedded(store):
            store.log.recoveryEvents.map { "recovered: \($0)" } + (store.indexRebuildReason.map { ["indexes rebuilt from the log (\($0))"] } ?? [])
        case let .cluster(store):
            ["cluster stream \(store.streamName) (R\(store.replicas), \(store.partitionCount) partitions) on \(store.options.urls): \(store.durabilityStatement)"]
                + (store.idLoad.cacheSkipped.map { ["id cache not used: \($0); read the whole stream"] } ?? [])
        }
    }

    /// Closes the embedded store; saves a cluster writer's id cache (its next open reads
    /// only the messages after it).
    func close() async throws {
        switch self {
        case let .embedded(store): try await store.close()
        case let .cluster(store): try store.saveIDCache()
        }
    }
}

/// Looks for events that other processes append to a cluster store: asks for the stream's
/// end every `interval` seconds and, when it moved past `ends` (where the server's view
/// and feed started), teaches the writer's index the new messages (their streams and ids)
/// and calls `moved`, which wakes the view and the live streams. A request that fails is
/// tried again at the next interval; the view and the live streams report the cluster's
/// failures themselves when they read.
final class EndWatch: Sendable {
    private struct State {
        var stopping = false
        var stopped = false
        var ends: [Int64]
    }

    private let state: ConditionLock<State>

    /// The stream's end as last seen (no request: for `/metrics`, which must answer while
    /// the cluster does not).
    var lastEnds: [Int64] { state.withLock { $0.ends } }

    /// Asks for the stream's end every `interval` seconds; when it moved, teaches the
    /// writer the new messages and calls `moved`. After a failed publish it also lets
    /// appends go on again (`JetStreamStore.resumeAppends`) as soon as the cluster answers,
    /// and calls `resumed`.
    init(store: JetStreamStore, from ends: [Int64], interval: Double, onFailure: @escaping @Sendable (any Error) -> Void,
         resumed: @escaping @Sendable () -> Void, moved: @escaping @Sendable () -> Void) throws {
        precondition(interval > 0, "EndWatch: a positive interval")
        let state = ConditionLock(State(ends: ends))
        self.state = state
        try startThread(name: "end-watch") {
            var failing = false
            while !state.wait(until: { $0.stopping }, timeoutNanoseconds: UInt64(interval * 1e9), { $0.stopping }) {
                do {
                    let now = try store.source.endOffsets()
                    if now != state.withLock({ $0.ends }) {
                        try store.learnAppends(through: UInt64(max(0, now[0])))
                        state.withLock { $0.ends = now }
                        moved()
                    }
                    if store.appendFailure != nil, try store.resumeAppends() { resumed() }
                    failing = false
                } catch {
                    if !failing { onFailure(error) }
                    failing = true
                }
            }
            state.withLock { $0.stopped = true }
            state.broadcast()
        }
    }

    /// Stops asking, and waits until the thread has (at most a request's time).
    func stop() {
        state.withLock { $0.stopping = true }
        state.broadcast()
        state.wait(until: { $0.stopped }, timeoutNanoseconds: nil) { _ in }
    }
}
