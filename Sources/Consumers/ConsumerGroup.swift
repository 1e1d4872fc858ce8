import EventLog
import EventStore
import Foundation

/// What can go wrong with a consumer group, each with a sentence for a person.
public struct ConsumerError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A named consumer group of a store on this machine (docs/CONSUMERS.md): a directory
/// `consumers/<name>/` holding one state file per lane (`LaneState`), one lock file per
/// lane — held by the member delivering that lane — and one lock file per live member.
/// Locks are `flock`s: the kernel drops a dead member's, so another member takes its lanes
/// over at its next look, without a coordinator and without stopping the others.
/// (`save` needs no lease check here: a lane's lock is held until its holder lets go or
/// dies, so no other process saves a leased lane.)
public final class ConsumerGroup: GroupCoordinator, @unchecked Sendable {
    public let name: String
    public let directory: String
    public let laneCount: Int
    let storage: any Storage

    /// Group names become directory names: 1–64 of `A–Z a–z 0–9 _ . -`, not only dots.
    public static func validate(name: String) throws {
        let allowed = name.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        guard (1...64).contains(name.utf8.count), allowed, name.utf8.contains(where: { $0 != UInt8(ascii: ".") }) else {
            throw ConsumerError("group name \"\(name)\": use 1–64 characters of A–Z a–z 0–9 _ . - (not only dots)")
        }
    }

    /// The group `name` under `root` (a store's `consumers/` directory), made if missing.
    public init(root: String, name: String, laneCount: Int, storage: any Storage = PosixStorage()) throws {
        try Self.validate(name: name)
        precondition(laneCount >= 1, "a group over \(laneCount) lanes")
        self.name = name
        self.directory = root + "/" + name
        self.laneCount = laneCount
        self.storage = storage
        do { try storage.createDirectory(directory) } catch { throw ConsumerError("cannot create \(directory): \(error)") }
    }

    /// The root of `tenant`'s own groups — those `backorder serve` holds for HTTP clients,
    /// which deliver that tenant's events only — in the data directory `data`:
    /// `<data>/tenant-consumers/<tenant's UTF-8 in hex>`, so that no tenant name (`..`,
    /// `a/b`) reaches outside it. The store-wide groups of `backorder consume` are in
    /// `<data>/consumers`.
    public static func tenantRoot(data: String, tenant: String) -> String {
        data + "/tenant-consumers/" + ByteCoding.hexString(tenant.utf8)
    }

    /// The groups under `root`.
    public static func names(root: String, storage: any Storage = PosixStorage()) -> [String] {
        ((try? storage.listDirectory(root)) ?? []).filter { (try? validate(name: $0)) != nil }.sorted()
    }

    // MARK: Lane state

    func statePath(_ lane: Int) -> String { directory + "/lane-" + Self.number(lane) + ".state" }
    func lockPath(_ lane: Int) -> String { directory + "/lane-" + Self.number(lane) + ".lock" }

    static func number(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The lane's state; a lane never written starts at offset 0. A damaged file is an
    /// error naming it: a checkpoint is never guessed.
    public func state(lane: Int) throws -> LaneState {
        let path = statePath(lane)
        guard storage.exists(path) else { return LaneState(lane: lane, checkpoint: 0) }
        let bytes: [UInt8]
        do {
            let file = try storage.open(path, create: false, writable: false)
            defer { file.close() }
            let size = Int(try file.size())
            var buffer = [UInt8](repeating: 0, count: size)
            let read = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            bytes = Array(buffer.prefix(read))
        } catch {
            throw ConsumerError("cannot read \(path): \(error)")
        }
        switch LaneState.decode(bytes) {
        case let .success(state):
            guard state.lane == lane else { throw ConsumerError("\(path) is damaged: it holds lane \(state.lane)") }
            return state
        case let .failure(damage):
            throw ConsumerError("\(path) is damaged: \(damage.reason); the group's checkpoint for lane \(lane) is unknown — `backorder groups reset \(name) --to …` sets it")
        }
    }

    /// Replaces the lane's state atomically and durably.
    public func save(_ state: LaneState) throws {
        precondition((0..<laneCount).contains(state.lane), "lane \(state.lane) of \(laneCount)")
        let path = statePath(state.lane), temporary = path + ".tmp"
        do {
            let file = try storage.open(temporary, create: true, writable: true)
            let bytes = state.encoded()
            do {
                try file.truncate(to: 0)
                try bytes.withUnsafeBytes { try file.write($0, at: 0) }
                try file.sync()
                file.close()
            } catch {
                file.close()
                throw error
            }
            try storage.rename(temporary, to: path)
            try storage.syncDirectory(directory)
        } catch {
            throw ConsumerError("cannot save the checkpoint of lane \(state.lane) in \(path): \(error)")
        }
    }

    // MARK: Members and leases

    /// Takes lane `lane` for this process, or nil when another member holds it.
    public func tryLease(lane: Int) throws -> (any StorageLock)? {
        do { return try storage.lock(lockPath(lane)) } catch LogError.locked { return nil } catch {
            throw ConsumerError("cannot lock \(lockPath(lane)): \(error)")
        }
    }

    /// Registers a live member: a lock file held for its life, removed when it leaves.
    public func join() throws -> GroupMembership {
        let id = GroupMembership.newID()
        let path = directory + "/member-\(id).lock"
        let lock: any StorageLock
        do { lock = try storage.lock(path) } catch { throw ConsumerError("cannot register a member in \(directory): \(error)") }
        let storage = self.storage
        return GroupMembership(id: id) {
            try? storage.remove(path)
            lock.release()
        }
    }

    /// Members alive now (their lock is held); files of dead ones are removed. `own` is
    /// counted without being probed.
    public func liveMembers(own: String?) -> Int {
        var live = 0
        for entry in (try? storage.listDirectory(directory)) ?? [] where entry.hasPrefix("member-") && entry.hasSuffix(".lock") {
            if let own, entry == "member-\(own).lock" { live += 1; continue }
            let path = directory + "/" + entry
            if let probe = try? storage.lock(path) {
                // Nobody holds it: a member that died. Remove the file, then let go.
                try? storage.remove(path)
                probe.release()
            } else {
                live += 1
            }
        }
        return live
    }

    // MARK: Administration

    /// Whether a live member holds the lane: its lock cannot be taken.
    public func isHeld(lane: Int) throws -> Bool {
        guard let free = try tryLease(lane: lane) else { return true }
        free.release()
        return false
    }

    /// Removes the group (no member may be running).
    public func delete() throws {
        try withAllLanes {
            for entry in try storage.listDirectory(directory) { try storage.remove(directory + "/" + entry) }
        }
        try storage.removeDirectory(directory)
    }
}

private extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
