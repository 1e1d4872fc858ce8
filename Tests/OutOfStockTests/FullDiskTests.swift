import Foundation
import Testing
@testable import EventStore
@testable import OutOfStock
import TestSupport

/// A small tmpfs mounted by the test, unmounted whatever happens: as root, or through
/// `sudo -n` (as `.ci/run` installs packages), owned by this process's user. A machine
/// where neither works fails the test, naming why: a full disk is not tested by skipping it.
struct TmpfsMount {
    let path: String

    init(at path: String, megabytes: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,uid=\(getuid()),gid=\(getgid()),mode=0700", "tmpfs", path])
        guard status == 0 else {
            throw CLIError(message: "mount -t tmpfs failed (\(status)): \(output); the full-disk test needs root or passwordless sudo to mount a small file system")
        }
    }

    func unmount() {
        if Self.run("/bin/umount", [path]).0 != 0 { _ = Self.run("/bin/umount", ["-l", path]) }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs a mount tool, through `sudo -n` when not root.
    static func run(_ tool: String, _ arguments: [String]) -> (Int32, String) {
        do {
            let child = getuid() == 0 ? try runChild(tool, arguments) : try runChild("/usr/bin/sudo", ["-n", tool] + arguments)
            return (child.status, child.standardOutput + child.standardError)
        } catch { return (-1, "\(error)") }
    }
}

/// Full disk on a real (tmpfs) file system, end to end through `backorder`.
@Suite(.serialized)
struct FullDiskTests {
    /// Fills the file system with a file until it is full; returns its path.
    static func fill(_ directory: String, name: String) -> String {
        let path = directory + "/" + name
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { return path }
        let block = Data(repeating: 0x5A, count: 64 << 10)
        while (try? handle.write(contentsOf: block)) != nil {}
        try? handle.close()
        return path
    }

    @Test func appendsFailClearlyLoseNothingAndResumeOnceSpaceIsFreed() async throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mount = try TmpfsMount(at: dir + "/mnt", megabytes: 16)
        defer { mount.unmount() }
        let store = mount.path + "/store"
        // The input lives outside the small file system.
        let (status, generated, _) = try runBackorder(["generate", "--events", "60000", "--seed", "8"])
        #expect(status == 0)
        let lines = generated.split(separator: "\n").map(String.init)
        let chunk = 3_000
        let chunks = stride(from: 0, to: lines.count, by: chunk).map { Array(lines[$0..<min(lines.count, $0 + chunk)]) }
        for (i, lines) in chunks.enumerated() {
            try (lines.joined(separator: "\n") + "\n").write(toFile: "\(dir)/chunk-\(i).ndjson", atomically: true, encoding: .utf8)
        }
        // Space to free later.
        try Data(repeating: 1, count: 6 << 20).write(to: URL(fileURLWithPath: mount.path + "/reserve"))

        // A good snapshot first.
        #expect(try runBackorder(["append", "\(dir)/chunk-0.ndjson", "--data", store, "--partitions", "1"]).0 == 0)
        let (snapStatus, _, snapErr) = try runBackorder(["snapshot", "--data", store])
        #expect(snapStatus == 0, "\(snapErr)")
        let snapshots = store + "/views/records"

        // Append chunk after chunk until the disk is full.
        var acknowledged = 1
        var failed: Int?
        var diskFullMessage = ""
        for i in 1..<chunks.count {
            let process = try startBackorder(["append", "\(dir)/chunk-\(i).ndjson", "--data", store, "--partitions", "1"], output: dir + "/append")
            process.waitUntilExit()
            let err = (try? String(contentsOfFile: dir + "/append.stderr", encoding: .utf8)) ?? ""
            #expect(process.terminationReason == .exit, "chunk \(i): backorder died of a signal (\(process.terminationStatus)): \(err.prefix(400))")
            if process.terminationStatus == 0 {
                acknowledged = i + 1
                continue
            }
            #expect(process.terminationStatus == 1)
            #expect(err.contains("disk full"), "chunk \(i): \(err.prefix(400))")
            failed = i
            diskFullMessage = err.split(separator: "\n").first.map(String.init) ?? ""
            break
        }
        let failedChunk = try #require(failed, "the 16 MiB file system never filled up")

        // A view commit that cannot be written never damages the committed view: the
        // MANIFEST keeps its bytes, nothing temporary is left, and queries still answer.
        let generation = try String(contentsOfFile: snapshots + "/CURRENT", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let manifest = snapshots + "/" + generation + "/MANIFEST"
        let goodBytes = try Data(contentsOf: URL(fileURLWithPath: manifest))
        let filler = Self.fill(mount.path, name: "filler")
        let (fullStatus, fullOut, fullErr) = try runBackorder(["snapshot", "--data", store])
        if fullStatus != 0 {
            #expect(fullErr.contains("no space") || fullErr.contains("disk full"), "\(fullErr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: manifest)) == goodBytes, "a failed commit changed the MANIFEST")
        } else {
            // It found room (files a failed commit left were removed when the view opened):
            // then it must be right — the view at the end of what was acknowledged.
            #expect(fullOut.contains("(\(acknowledged * chunk) events)"), "a commit on a full disk: \(fullOut)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: snapshots + "/" + generation)
        #expect(!names.contains { $0.hasSuffix(".tmp") }, "a temporary file was left behind: \(names)")
        let (queryStatus, _, queryErr) = try runBackorder(["query", "dashboard", "--data", store])
        #expect(queryStatus == 0, "a query on a full disk: \(queryErr)")

        // Space freed. The failed run said how many of its events were stored: at most
        // what the store holds of its chunk (a failed batch may be stored in part).
        try FileManager.default.removeItem(atPath: filler)
        try FileManager.default.removeItem(atPath: mount.path + "/reserve")
        let saidStored = try #require(diskFullMessage.firstMatch(of: /; (\d+) events were stored before the failure/).map { Int($0.1)! },
                                      "the disk-full message says how many events were stored: \(diskFullMessage)")
        let beforeRetry = try await EventStore.open(at: store)
        var storedOfChunk = 0
        for line in chunks[failedChunk] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let id = try #require(EventID(object["id"] as? String ?? ""))
            if try beforeRetry.storedPosition(of: id, tenant: object["tenant"] as? String ?? "default") != nil { storedOfChunk += 1 }
        }
        try await beforeRetry.close()
        #expect(saidStored <= storedOfChunk, "the failed run said \(saidStored) events were stored; the store holds \(storedOfChunk) of its chunk")
        let (retryStatus, _, retryErr) = try runBackorder(["append", "\(dir)/chunk-\(failedChunk).ndjson", "--data", store])
        #expect(retryStatus == 0, "after freeing space: \(retryErr.prefix(400))")
        acknowledged = failedChunk + 1
        let (againStatus, _, againErr) = try runBackorder(["snapshot", "--data", store])
        #expect(againStatus == 0, "\(againErr)")

        // Every acknowledged event is stored, once.
        let opened = try await EventStore.open(at: store)
        var missing = 0
        for lines in chunks.prefix(acknowledged) {
            for line in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let id = try #require(EventID(object["id"] as? String ?? ""))
                if try opened.storedPosition(of: id, tenant: object["tenant"] as? String ?? "default") == nil { missing += 1 }
            }
        }
        #expect(missing == 0, "\(missing) acknowledged events lost")
        let total = try allStoredEvents(opened).count
        #expect(total == acknowledged * chunk, "stored \(total), acknowledged \(acknowledged * chunk)")
        try await opened.close()
        print("full disk test: the disk filled at chunk \(failedChunk) of \(chunk) events (\(diskFullMessage)); \(storedOfChunk) of its events stored; snapshot on the full disk: \(fullErr.split(separator: "\n").first ?? ""); \(total) events checked after freeing space, 0 lost")
    }
}
