import EventStore
import KVStore

/// A view kept in a key-value store from a log's events (docs/PROJECTIONS.md): it applies
/// each lane's events in order and writes rows through the store's writer. The engine
/// (`MaintainedView`) decides when to commit; before each commit it calls `prepareCommit`,
/// after which the store must hold exactly the view of the events applied so far — the
/// commit records their positions with those rows, atomically.
public protocol ViewProjector: AnyObject {
    /// The view's name: its directory under `views/`.
    static var name: String { get }
    /// Bumped when the rows' meaning or layout changes: a view of another version is
    /// rebuilt from the log.
    static var version: Int { get }
    /// A projector writing into `store`.
    init(store: KVStore)
    /// Applies the next event of a lane (each lane's events come in offset order; lanes
    /// may interleave).
    func apply(_ event: RawEvent) throws
    /// Writes anything buffered (see above).
    func prepareCommit() throws
}
