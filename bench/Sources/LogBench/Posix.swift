#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds from CLOCK_MONOTONIC.
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func errnoError(_ operation: String, _ path: String) -> BenchError {
    BenchError("\(operation) \(path): \(String(cString: strerror(errno)))")
}

/// A fresh directory `base/logbench-XXXXXX`.
func makeTemporaryDirectory(base: String) throws -> String {
    var template = Array((base + "/logbench-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw errnoError("mkdtemp", base) }
    return String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `rm -rf path` with plain POSIX calls (never follows symbolic links).
func removeTree(_ path: String) {
    guard !path.isEmpty else { return }
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if (info.st_mode & S_IFMT) == S_IFDIR {
        for name in listDirectory(path) { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Regular files under `path`, recursively.
func filesUnder(_ path: String) -> [String] {
    var result: [String] = []
    for name in listDirectory(path) {
        let full = path + "/" + name
        var info = stat()
        guard lstat(full, &info) == 0 else { continue }
        if (info.st_mode & S_IFMT) == S_IFDIR { result += filesUnder(full) } else if (info.st_mode & S_IFMT) == S_IFREG { result.append(full) }
    }
    return result
}

func fileSize(_ path: String) -> Int64 {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : 0
}

/// Sum of the sizes of the regular files under `path` whose name ends with `suffix`.
func bytesUnder(_ path: String, suffix: String = "") -> Int64 {
    filesUnder(path).filter { $0.hasSuffix(suffix) }.reduce(0) { $0 + fileSize($1) }
}

/// Drops the (clean) page-cache pages of the files under `path`, so that the next read
/// comes from the disk. Only these files are affected, not the rest of the machine.
func evictFromPageCache(_ path: String) {
    for file in filesUnder(path) {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { continue }
        fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }
}

/// Flushes dirty data and metadata (such as earlier runs' deletions), so that one
/// measurement's leftovers do not land in the next one's fdatasyncs.
func settleFileSystem(_ path: String) {
    sync()
}

// MARK: Machine description

struct MachineInfo {
    var cpuModel = "?"
    var cpus = 0
    var memoryGiB = 0.0
    var fileSystem = "?"
    var kernel = "?"

    static func read(directory: String) -> MachineInfo {
        var info = MachineInfo()
        info.cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let text = readTextFile("/proc/cpuinfo"),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            info.cpuModel = line[line.index(after: colon)...].trimmingSpaces()
        }
        if let text = readTextFile("/proc/meminfo"),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = Double(line.split(separator: " ").dropFirst().first ?? "") {
            info.memoryGiB = kb / 1_048_576
        }
        info.fileSystem = fileSystemType(of: directory)
        var names = utsname()
        if uname(&names) == 0 {
            info.kernel = withUnsafeBytes(of: names.release) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
        return info
    }
}

/// The type of the file system holding `path`, from the longest matching /proc/mounts entry.
func fileSystemType(of path: String) -> String {
    guard let mounts = readTextFile("/proc/mounts") else { return "?" }
    var best = "", type = "?"
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let point = String(fields[1])
        let matches = path == point || path.hasPrefix(point == "/" ? "/" : point + "/")
        if matches && point.count >= best.count { best = point; type = String(fields[2]) + " (" + String(fields[0]) + " on " + point + ")" }
    }
    return type
}

func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// Today's date (UTC) as YYYY-MM-DD.
func todayUTC() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    func pad(_ n: Int32, _ w: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, w - s.count)) + s }
    return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
}

/// User + system CPU seconds of this process so far (all threads).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// The 1-minute load average, from /proc/loadavg.
func loadAverage() -> String {
    guard let text = readTextFile("/proc/loadavg") else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// Busy CPU time of the whole machine and of this process, to tell how much of a
/// measurement's wall time other processes took (the machine is shared).
struct LoadSnapshot {
    let machineBusy: Double
    let ownBusy: Double
    let at: UInt64

    static func now() -> LoadSnapshot {
        var busy = 0.0
        if let text = readTextFile("/proc/stat"), let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") {
            // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
            let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            for (i, t) in ticks.prefix(8).enumerated() where i != 3 && i != 4 { busy += t }
            busy /= Double(sysconf(Int32(_SC_CLK_TCK)))
        }
        return LoadSnapshot(machineBusy: busy, ownBusy: cpuSeconds(), at: nowNanoseconds())
    }

    /// Cores' worth of CPU that other processes used since `start`.
    func othersCores(since start: LoadSnapshot) -> Double {
        let seconds = Double(at - start.at) / 1e9
        guard seconds > 0 else { return 0 }
        return max(0, (machineBusy - start.machineBusy) - (ownBusy - start.ownBusy)) / seconds
    }
}

/// The root package's commit and whether Sources/EventLog has uncommitted changes
/// (read-only git commands), to tell which EventLog a run measured.
func eventLogRevision(repository: String) -> String {
    func run(_ command: String) -> String? {
        guard let pipe = popen(command, "r") else { return nil }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 256)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return pclose(pipe) == 0 ? output.trimmingCharacters() : nil
    }
    guard let commit = run("git -C '\(repository)' rev-parse --short HEAD 2>/dev/null") else { return "unknown (not a git checkout)" }
    let dirty = run("git -C '\(repository)' status --porcelain -- Sources/EventLog 2>/dev/null") ?? ""
    return "commit \(commit)" + (dirty.isEmpty ? "" : " plus uncommitted changes in Sources/EventLog")
}

extension String {
    func trimmingCharacters() -> String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
