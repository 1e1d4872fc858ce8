import EventLog
import EventStore
import Foundation
import KVStore

extension MaintainedView {
    /// What a rebuild did.
    public struct RebuildReport: Sendable {
        /// The generation now current.
        public var generation: String
        /// Events applied (the history, then those appended while it ran).
        public var events: Int64
        /// Events appended while the rebuild ran, applied under the view's lock before the swap.
        public var caughtUp: Int64
        /// Bytes of the new generation's files.
        public var bytes: Int64
    }

    /// Rebuilds the view from the whole log into a new generation while queries keep
    /// reading the current one; then, holding the view's lock, applies what was appended
    /// meanwhile and swaps the new generation in (docs/PROJECTIONS.md, "Rebuild"). The old
    /// generation is removed. `progress` gets (events applied, events to apply).
    public static func rebuild(root: String, source: any EventSource, options: KVOptions, storage: any Storage = PosixStorage(),
                               lockTimeoutMilliseconds: Int = 60_000, progress: (Int64, Int64) -> Void = { _, _ in }) throws -> RebuildReport {
        let directory = ViewDirectory(root: root, name: P.name, storage: storage)
        try storage.createDirectory(directory.path)
        // The new generation's own store lock keeps `removeLeftovers` of other processes away from it.
        let generation: String
        do {
            let lock = try directory.lock(timeoutMilliseconds: lockTimeoutMilliseconds)
            defer { lock.release() }
            try directory.removeLeftovers()
            generation = try directory.newGeneration()
            try storage.createDirectory(directory.path(of: generation))
        }
        let store = try KVStore.open(at: directory.path(of: generation), mode: .writable, options: options, storage: storage)
        let view = MaintainedView(directory: directory, generation: generation, store: store, source: source, isWriter: true,
                                  checkpoint: empty(source), resetReason: nil, lock: nil)
        do {
            let ends = try source.endOffsets()
            let total = ends.reduce(0, +)
            let applied = try view.catchUp(upTo: ends) { progress($0, total) }
            let lock = try directory.lock(timeoutMilliseconds: lockTimeoutMilliseconds)
            defer { lock.release() }
            let caughtUp = try view.catchUp()
            try view.commit()
            try store.flush()
            let bytes = store.diskBytes
            try store.close()
            let old = directory.current()
            try directory.setCurrent(generation)
            if let old, old != generation { try directory.remove(old) }
            return RebuildReport(generation: generation, events: applied + caughtUp, caughtUp: caughtUp, bytes: bytes)
        } catch {
            try? store.close()
            try? directory.remove(generation)
            throw error
        }
    }

    /// A view built from the log up to `positions` (per lane) in a scratch directory that is
    /// never current — for answers "as of" a moment. Its files are written without syncing;
    /// `discardScratch()` removes them.
    public static func scratch(at path: String, source: any EventSource, upTo positions: [Int64], options: KVOptions,
                               storage: any Storage = PosixStorage(), progress: (Int64, Int64) -> Void = { _, _ in }) throws -> MaintainedView {
        var options = options
        options.sync = false
        let directory = ViewDirectory(root: path, name: P.name, storage: storage)
        let generation = try directory.newGeneration()
        let store = try KVStore.open(at: directory.path(of: generation), mode: .writable, options: options, storage: storage)
        let view = MaintainedView(directory: directory, generation: generation, store: store, source: source, isWriter: true,
                                  checkpoint: empty(source), resetReason: nil, lock: nil)
        do {
            let total = positions.reduce(0, +)
            try view.catchUp(upTo: positions) { progress($0, total) }
            try view.commit()
            return view
        } catch {
            try? view.discardScratch()
            throw error
        }
    }

    /// Closes a scratch view and removes its files, and the directories `scratch(at:)` made
    /// for it (`<path>/views/<name>`, `<path>/views`, `<path>`).
    public func discardScratch() throws {
        try? store.close()
        try directory.remove(generation)
        let views = (directory.path as NSString).deletingLastPathComponent
        try? directory.storage.removeDirectory(directory.path)
        try? directory.storage.removeDirectory(views)
        try? directory.storage.removeDirectory((views as NSString).deletingLastPathComponent)
    }
}
