import EventLog

/// Streams' states as acknowledged appends left them, shared by the ingests of one process
/// (a server's requests): each request is a new `Ingestor` whose memory starts empty, and
/// without this it loaded every customer, product and record it touched again — from the
/// records view when its last publication held the stream at the store's version, else by
/// reading the stream's events from the log, which decompressed a whole batch per event
/// (a quarter of a server's CPU under batched appends, bench/RESULTS.md).
///
/// An entry is a stream's version and the state its first `version` events fold to. Since
/// the log is never rewritten, that state is the same for as long as the store says the
/// stream is at that version; the ingest asks the store for the version first and takes an
/// entry only when it matches (`state(_:version:)`), so an entry another process or request
/// has moved past is never used. Entries go in only after an append was acknowledged whole
/// (`keep`), so no entry names a version the store did not take.
///
/// Bounded: a `TwoGenerationCache` of `capacity` entries — the streams requests keep
/// touching (customers and products) stay while records done with go.
public final class StreamStateCache: Sendable {
    /// Entries kept at most.
    public let capacity: Int
    private let entries: ConditionLock<TwoGenerationCache<StreamKey, CachedStream>>

    /// A cache of at most `capacity` states (about 200 bytes each; at most about 3 KB, a
    /// product of 20 sizes with long names).
    public init(capacity: Int) {
        precondition(capacity >= 2, "StreamStateCache: a capacity of \(capacity) holds no generation")
        self.capacity = capacity
        entries = ConditionLock(TwoGenerationCache(limit: capacity))
    }

    /// Entries held now.
    public var count: Int { entries.withLock { $0.count } }

    /// The state of `stream` at `version`, when this cache holds it at that version.
    func state(_ stream: StreamKey, version: Int64) -> StreamState? {
        entries.withLock { cache in
            guard let entry = cache.get(stream), entry.version == version else { return nil }
            return entry.state
        }
    }

    /// Keeps the states an acknowledged append left (and the ones it read on the way); an
    /// entry at a later version (a request that finished first) stays.
    func keep(_ states: [(StreamKey, CachedStream)]) {
        entries.withLock { cache in
            for (stream, entry) in states {
                if let held = cache.get(stream), held.version > entry.version { continue }
                cache.set(stream, entry)
            }
        }
    }
}
