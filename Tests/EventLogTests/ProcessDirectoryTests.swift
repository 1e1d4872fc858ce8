import Foundation
import Testing
@testable import EventLog
import TestSupport

/// Directories named for the process that made them: a killed process's are removed by the
/// next process that makes one, however deep they go; a running process's and a locked one
/// stay.
@Suite struct ProcessDirectoryTests {
    @Test func orphansOfEndedProcessesAreRemovedWithEverythingInThem() throws {
        let files = FileManager.default
        let parent = NSTemporaryDirectory() + "process-directories-\(UInt64.random(in: 0...UInt64.max))"
        try files.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? files.removeItem(atPath: parent) }
        let dead = try endedProcessID()
        func make(_ name: String, _ deep: String) throws -> String {
            let path = parent + "/" + name
            try files.createDirectory(atPath: path + "/" + deep, withIntermediateDirectories: true)
            for file in ["LOCK", "MANIFEST", "000007.sst"] { _ = files.createFile(atPath: path + "/" + deep + "/" + file, contents: Data([7])) }
            return path
        }
        let orphan = try make("scratch-\(dead)-1", "views/records/gen-000001")
        let locked = try make("scratch-\(dead)-2", "views/records/gen-000001")
        let running = try make("scratch-1-3", "views/records/gen-000001")  // init runs as long as the machine does
        let other = try make("records", "gen-000004")
        let lock = try PosixStorage().lock(locked + "/views/records/gen-000001/LOCK")
        defer { lock.release() }

        let removed = ProcessDirectory.removeOrphans(in: parent, prefix: "scratch-", storage: PosixStorage())
        #expect(removed == ["scratch-\(dead)-1"])
        #expect(!files.fileExists(atPath: orphan))
        for kept in [locked, running, other] { #expect(files.fileExists(atPath: kept), "\(kept)") }
        #expect(ProcessDirectory.name("scratch-").hasPrefix("scratch-\(getpid())-"))
    }
}
