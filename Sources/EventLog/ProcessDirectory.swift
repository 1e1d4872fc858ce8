#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Directories a process makes for its own use beside shared ones — an ingest's scratch
/// store in the temporary directory, an `audit as-of` replay beside the views — named
/// `<prefix><pid>-<random>`. A process killed with `kill -9` cannot remove its own; the next
/// process that makes one removes those left behind (`removeOrphans`).
public enum ProcessDirectory {
    /// A new name for this process: `<prefix><pid>-<random>`.
    public static func name(_ prefix: String) -> String {
        prefix + "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Removes, with everything in them, the entries of `parent` named `<prefix><pid>-…`
    /// whose process is gone and in which no `LOCK` file (at any depth) is held. One whose
    /// process runs — or whose pid was reused — is left. (Processes of another pid namespace
    /// sharing `parent` are not told apart: one of theirs is left only while it holds a
    /// lock.) Best effort: what cannot be removed is left for a later try. Returns the
    /// entries removed.
    @discardableResult
    public static func removeOrphans(in parent: String, prefix: String, storage: any Storage) -> [String] {
        var removed: [String] = []
        for name in (try? storage.listDirectory(parent)) ?? [] where name.hasPrefix(prefix) {
            let fields = name.dropFirst(prefix.count).split(separator: "-")
            guard fields.count == 2, let pid = Int32(fields[0]), pid > 0, pid != getpid(), !processExists(pid) else { continue }
            let path = parent + "/" + name
            guard !holdsLock(path, storage: storage) else { continue }
            removeTree(path, storage: storage)
            removed.append(name)
        }
        return removed
    }

    /// Removes `path` and everything below it: in each directory its files first, its
    /// `LOCK` last (a kill part way leaves a directory still recognizable), then the
    /// directory. Best effort.
    public static func removeTree(_ path: String, storage: any Storage) {
        let entries = (try? storage.listDirectory(path)) ?? []
        for entry in entries where entry != "LOCK" {
            let child = path + "/" + entry
            // Not a file: a directory (Storage has no stat), emptied first.
            if (try? storage.remove(child)) == nil { removeTree(child, storage: storage) }
        }
        if entries.contains("LOCK") { try? storage.remove(path + "/LOCK") }
        try? storage.removeDirectory(path)
    }

    /// Whether a `LOCK` file at or below `path` is held by a process now (a file that is
    /// not a directory lists nothing).
    private static func holdsLock(_ path: String, storage: any Storage) -> Bool {
        for entry in (try? storage.listDirectory(path)) ?? [] {
            let child = path + "/" + entry
            if entry == "LOCK" {
                guard let lock = try? storage.lock(child) else { return true }
                lock.release()
            } else if holdsLock(child, storage: storage) {
                return true
            }
        }
        return false
    }

    private static func processExists(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
}
