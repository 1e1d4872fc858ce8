// KVBench: the KVStore engine on its own.
//
//   KVBench trace FILE DIR        replay a key-value trace (bench/kvcompare/README.md's format),
//                                  the same trace LMDB and SQLite replay there
//   KVBench random DIR [N]        N random 24-byte keys with 100-byte values, then gets and scans
//
// Prints throughput, CPU seconds (getrusage), bytes written (/proc/self/io), files, peak RSS.
import EventLog
import Foundation
import KVStore

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func writeBytes() -> Int64 {
    guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("write_bytes:") { return Int64(line.split(separator: " ").last ?? "0") ?? 0 }
    return 0
}

func status(_ field: String) -> String {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return "?" }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces)
    }
    return "?"
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func replay(trace path: String, directory: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else { fatalError("cannot read \(path)") }
    let bytes = [UInt8](data)
    guard bytes.count >= 8, String(decoding: bytes[0..<8], as: UTF8.self) == "BOKVTRC1" else { fatalError("\(path): not a BOKVTRC1 trace") }
    try? FileManager.default.removeItem(atPath: directory)
    let store = try KVStore.open(at: directory)
    var position = 8
    var puts = 0, deletes = 0, gets = 0, hits = 0, commits = 0, scans = 0
    var readPhase = false
    var getTimes: [Double] = [], scanTimes: [Double] = []
    var snapshot: KVSnapshot?
    var sum = 0
    let start = now(), startCPU = cpuSeconds(), startWritten = writeBytes()
    var writeEnd = start, writeCPU = 0.0, written: Int64 = 0
    try bytes.withUnsafeBytes { raw in
        func u16() -> Int { defer { position += 2 }; return Int(raw.loadUnaligned(fromByteOffset: position, as: UInt16.self)) }
        func u32() -> Int { defer { position += 4 }; return Int(raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)) }
        func slice(_ n: Int) -> UnsafeRawBufferPointer { defer { position += n }; return UnsafeRawBufferPointer(rebasing: raw[position..<(position + n)]) }
        loop: while position < raw.count {
            let op = raw[position]
            position += 1
            switch op {
            case UInt8(ascii: "P"):
                let k = slice(u16())
                let v = slice(u32())
                try store.put(k, v)
                puts += 1
            case UInt8(ascii: "D"):
                try store.delete(slice(u16()))
                deletes += 1
            case UInt8(ascii: "G"):
                let k = slice(u16())
                gets += 1
                if readPhase {
                    let t = now()
                    try snapshot!.withValue(k) { v in if let v { hits += 1; sum &+= Int(v.first ?? 0) } }
                    getTimes.append(now() - t)
                } else {
                    try store.withValue(k) { v in if let v { hits += 1; sum &+= Int(v.first ?? 0) } }
                }
            case UInt8(ascii: "S"):
                let k = Array(slice(u16()))
                let count = u32()
                scans += 1
                if !readPhase {
                    readPhase = true
                }
                if snapshot == nil { snapshot = store.snapshot() }
                let t = now()
                let it = snapshot!.makeIterator()
                try it.seek(k)
                var n = 0
                while it.isValid && n < count { sum &+= Int(it.value.first ?? 0) &+ it.key.count; n += 1; try it.next() }
                scanTimes.append(now() - t)
            case UInt8(ascii: "C"):
                let meta = Array(slice(u16()))
                try store.freeze(metadata: meta)
                commits += 1
            case UInt8(ascii: "E"):
                break loop
            default:
                fatalError("unknown op \(op) at \(position - 1)")
            }
            if !readPhase && op == UInt8(ascii: "C") {
                writeEnd = now()
                writeCPU = cpuSeconds() - startCPU
            }
            if op == UInt8(ascii: "G") && snapshot == nil && commits > 0 && position < raw.count {
                // the read phase starts after the final commit: detect by peeking for no later C
            }
        }
    }
    try store.flush()
    let flushed = now()
    written = writeBytes() - startWritten
    let shape = store.shape
    try store.close()
    let ops = puts + deletes + gets
    print("KVStore trace replay: \(puts) puts, \(deletes) deletes, \(gets) gets (\(hits) hits), \(commits) commits, \(scans) scans")
    print(String(format: "write phase: %.2f s wall (%.0f ops/s), %.2f s CPU; flushed by %.2f s", writeEnd - start, Double(ops) / (writeEnd - start), writeCPU, flushed - start))
    print("bytes written \(written / 1_000_000) MB, files per level \(shape.files), bytes per level \(shape.bytes.map { $0 / 1_000_000 }) MB")
    print("stats: \(shape.stats)")
    print(String(format: "read phase: get p50 %.1f µs p99 %.1f µs; scan p50 %.1f µs p99 %.1f µs", percentile(getTimes, 0.5) * 1e6, percentile(getTimes, 0.99) * 1e6, percentile(scanTimes, 0.5) * 1e6, percentile(scanTimes, 0.99) * 1e6))
    print("peak RSS \(status("VmHWM")), RssAnon \(status("RssAnon")), RssFile \(status("RssFile")) (checksum \(sum))")
}

func random(directory: String, count: Int) throws {
    try? FileManager.default.removeItem(atPath: directory)
    let store = try KVStore.open(at: directory)
    var rng = SplitMix(state: 42)
    var keys: [[UInt8]] = []
    let value = [UInt8](repeating: 7, count: 100)
    let start = now(), startCPU = cpuSeconds()
    for i in 0..<count {
        var key = [UInt8](repeating: 0, count: 24)
        for j in 0..<3 { withUnsafeBytes(of: rng.next()) { key.replaceSubrange((j * 8)..<(j * 8 + 8), with: $0) } }
        if i % 100 == 0 { keys.append(key) }
        try store.put(key, value)
        if store.needsFreeze { try store.freeze(metadata: []) }
    }
    try store.freeze(metadata: [])
    try store.flush()
    let elapsed = now() - start
    print(String(format: "random puts: %d in %.2f s (%.0f /s), %.2f s CPU", count, elapsed, Double(count) / elapsed, cpuSeconds() - startCPU))
    try store.settle()
    print(String(format: "settled (compactions done) after %.2f s, %.2f s CPU", now() - start, cpuSeconds() - startCPU))
    print("shape \(store.shape)")
    let snapshot = store.snapshot()
    var times: [Double] = []
    for key in keys.shuffled() {
        let t = now()
        guard try snapshot.get(key) != nil else { fatalError("lost a key") }
        times.append(now() - t)
    }
    print(String(format: "gets of stored keys: p50 %.1f µs p99 %.1f µs", percentile(times, 0.5) * 1e6, percentile(times, 0.99) * 1e6))
    try store.close()
    print("peak RSS \(status("VmHWM")), RssAnon \(status("RssAnon"))")
}

let args = CommandLine.arguments
switch args.dropFirst().first {
case "trace" where args.count >= 4: try replay(trace: args[2], directory: args[3])
case "random" where args.count >= 3: try random(directory: args[2], count: args.count > 3 ? Int(args[3]) ?? 1_000_000 : 1_000_000)
default:
    print("usage: KVBench trace FILE DIR | random DIR [N]")
    exit(2)
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
