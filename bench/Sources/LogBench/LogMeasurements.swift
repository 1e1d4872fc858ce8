import EventLog

/// Records per batch in the batched-append measurements.
let recordsPerBatch = 1_000

/// Result of one batched-append run (its log directory is kept for the scan).
struct AppendRun {
    let codec: Codec
    let partitions: Int
    let window: Int
    let records: Int
    let batches: Int
    let seconds: Double
    /// Key + value bytes appended.
    let rawBytes: Int
    /// Bytes of batches in the segments (headers included), from `statistics()`.
    let segmentBytes: Int64
    /// Every file of the log directory after close (segments, indexes, manifest, ...).
    let directoryBytes: Int64
    let segments: Int
    /// CPU seconds (all threads) per wall-clock second: 2.0 means both cores busy.
    let coresBusy: Double
    /// Cores' worth of CPU that other processes used meanwhile.
    let othersCores: Double

    var recordsPerSecond: Double { Double(records) / seconds }
    var rawMBPerSecond: Double { Double(rawBytes) / seconds / 1e6 }
    var diskMBPerSecond: Double { Double(segmentBytes) / seconds / 1e6 }
}

/// (1), (2): one producer builds 1,000-record batches from the pool and appends them with
/// up to `window` appends in flight, so that compressing the next batches (done by
/// `append` in the caller's task) overlaps the partition writer's pwrite + fdatasync.
/// With several partitions each record goes to `log.partition(forKey:)` and a partition's
/// batch is sent when it holds 1,000 records.
func batchedAppend(directory: String, codec: Codec, partitions: Int, records: Int, window: Int,
                   pool: EventPool) async throws -> AppendRun {
    var options = LogOptions()
    options.codec = codec
    options.partitionCount = partitions
    options.durability = .fsync
    let log = try await WriteAheadLog.open(at: directory, options: options)
    let capacity = recordsPerBatch * (Int(pool.meanRecordBytes) + 8)
    var rawBytes = 0
    var batches = 0
    let cpuStart = cpuSeconds()
    let loadStart = LoadSnapshot.now()
    let start = nowNanoseconds()
    let acknowledged = try await withThrowingTaskGroup(of: Int.self, returning: Int.self) { group in
        var builders = [RecordBatchBuilder](repeating: RecordBatchBuilder(), count: partitions)
        for p in 0..<partitions { builders[p] = RecordBatchBuilder(reservingCapacity: capacity) }
        var inFlight = 0
        var acked = 0
        var poolIndex = 0
        for i in 0..<records {
            let key = pool.keys[poolIndex], value = pool.values[poolIndex]
            poolIndex += 1
            if poolIndex == pool.count { poolIndex = 0 }
            rawBytes += key.count + value.count
            let p = partitions == 1 ? 0 : log.partition(forKey: key)
            try builders[p].append(key: key, value: value, timestamp: EventPool.timestamp(i))
            if builders[p].count == recordsPerBatch {
                let batch = builders[p]
                builders[p] = RecordBatchBuilder(reservingCapacity: capacity)
                if inFlight >= window, let done = try await group.next() { acked += done; inFlight -= 1 }
                group.addTask { try await log.append(batch, partition: p).recordCount }
                inFlight += 1
                batches += 1
            }
        }
        for p in 0..<partitions where builders[p].count > 0 {
            let batch = builders[p]
            if inFlight >= window, let done = try await group.next() { acked += done; inFlight -= 1 }
            group.addTask { try await log.append(batch, partition: p).recordCount }
            inFlight += 1
            batches += 1
        }
        while let done = try await group.next() { acked += done }
        return acked
    }
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let coresBusy = (cpuSeconds() - cpuStart) / seconds
    let othersCores = LoadSnapshot.now().othersCores(since: loadStart)
    guard acknowledged == records else { throw BenchError("acknowledged \(acknowledged) of \(records) records") }
    let statistics = log.statistics()
    try await log.close()
    let written = statistics.reduce(Int64(0)) { $0 + $1.endOffset - $1.startOffset }
    guard written == Int64(records) else { throw BenchError("log holds \(written) records, appended \(records)") }
    return AppendRun(
        codec: codec, partitions: partitions, window: window, records: records, batches: batches, seconds: seconds,
        rawBytes: rawBytes, segmentBytes: statistics.reduce(0) { $0 + $1.bytes },
        directoryBytes: bytesUnder(directory), segments: statistics.reduce(0) { $0 + $1.segmentCount },
        coresBusy: coresBusy, othersCores: othersCores)
}

/// Result of scanning a log.
struct ScanRun {
    let records: Int
    let batches: Int
    let segmentBytes: Int
    let seconds: Double
    let coresBusy: Double
    let othersCores: Double
    var recordsPerSecond: Double { Double(records) / seconds }
    var gigabytesPerSecond: Double { Double(segmentBytes) / seconds / 1e9 }
}

/// (5): opens the log read-only and reads every partition from offset 0 with a
/// `PartitionCursor` (CRC check, decompression, framing check per batch), touching every
/// record through `RecordBatch.forEach`. The open is not timed.
func scan(directory: String, expectedRecords: Int) async throws -> ScanRun {
    var options = LogOptions()
    options.writable = false
    let log = try await WriteAheadLog.open(at: directory, options: options)
    var records = 0, batches = 0, bytes = 0
    var touched: UInt64 = 0
    var expectedOffset: Int64 = 0
    var gaps = 0
    let cpuStart = cpuSeconds()
    let loadStart = LoadSnapshot.now()
    let start = nowNanoseconds()
    for partition in 0..<log.partitionCount {
        var cursor = try log.cursor(partition: partition, from: 0)
        expectedOffset = 0
        while let batch = try cursor.next() {
            batches += 1
            bytes += batch.header.batchLength
            batch.forEach { record in
                // Touch the offset, the timestamp, and the first and last byte of the value.
                if record.offset != expectedOffset { gaps += 1 }
                expectedOffset = record.offset + 1
                touched &+= UInt64(truncatingIfNeeded: record.timestamp) &+ UInt64(record.value.count)
                if let first = record.value.first, let last = record.value.last { touched &+= UInt64(first) &+ UInt64(last) }
                records += 1
            }
        }
    }
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let coresBusy = (cpuSeconds() - cpuStart) / seconds
    let othersCores = LoadSnapshot.now().othersCores(since: loadStart)
    try await log.close()
    guard records == expectedRecords else { throw BenchError("scan read \(records) records, expected \(expectedRecords)") }
    guard gaps == 0 else { throw BenchError("scan saw \(gaps) offsets that are not dense") }
    if touched == 42 { progress("") } // keeps the reads from being optimized away
    return ScanRun(records: records, batches: batches, segmentBytes: bytes, seconds: seconds, coresBusy: coresBusy, othersCores: othersCores)
}

/// (3): one caller appends single-record batches to one partition (fsync durability) and
/// awaits each; the time of each `append` call is one sample. The first `warmup` appends
/// (which include the writer's first 4 MiB zero-fill) are not counted.
func singleAppendLatency(directory: String, appends: Int, warmup: Int, pool: EventPool) async throws -> (latencies: Percentiles, othersCores: Double) {
    var options = LogOptions()
    options.partitionCount = 1
    options.durability = .fsync
    let log = try await WriteAheadLog.open(at: directory, options: options)
    var samples: [UInt64] = []
    samples.reserveCapacity(appends)
    var loadStart = LoadSnapshot.now()
    for i in 0..<(warmup + appends) {
        if i == warmup { loadStart = LoadSnapshot.now() }
        let j = i % pool.count
        var batch = RecordBatchBuilder(reservingCapacity: 256)
        try batch.append(key: pool.keys[j], value: pool.values[j], timestamp: EventPool.timestamp(i))
        let t0 = nowNanoseconds()
        _ = try await log.append(batch, partition: 0)
        let elapsed = nowNanoseconds() - t0
        if i >= warmup { samples.append(elapsed) }
    }
    let othersCores = LoadSnapshot.now().othersCores(since: loadStart)
    try await log.close()
    return (Percentiles(samples), othersCores)
}

struct GroupCommitRun {
    let callers: Int
    let perCaller: Int
    let seconds: Double
    let latencies: Percentiles
    let coresBusy: Double
    let othersCores: Double
    var records: Int { callers * perCaller }
    var recordsPerSecond: Double { Double(records) / seconds }
}

/// (4): `callers` tasks each append `perCaller` single-record batches to partition 0,
/// awaiting each (fsync durability): concurrent appends share fdatasyncs (group commit).
func groupCommit(directory: String, callers: Int, perCaller: Int, pool: EventPool) async throws -> GroupCommitRun {
    var options = LogOptions()
    options.partitionCount = 1
    options.durability = .fsync
    let log = try await WriteAheadLog.open(at: directory, options: options)
    // Warm-up: the writer's first flush zero-fills 4 MiB ahead of the data.
    var warm = RecordBatchBuilder()
    try warm.append(key: pool.keys[0], value: pool.values[0], timestamp: EventPool.timestamp(0))
    _ = try await log.append(warm, partition: 0)

    let cpuStart = cpuSeconds()
    let loadStart = LoadSnapshot.now()
    let start = nowNanoseconds()
    let samples = try await withThrowingTaskGroup(of: [UInt64].self, returning: [UInt64].self) { group in
        for caller in 0..<callers {
            group.addTask {
                var samples: [UInt64] = []
                samples.reserveCapacity(perCaller)
                for k in 0..<perCaller {
                    let i = 1 + caller * perCaller + k
                    let j = i % pool.count
                    var batch = RecordBatchBuilder(reservingCapacity: 256)
                    try batch.append(key: pool.keys[j], value: pool.values[j], timestamp: EventPool.timestamp(i))
                    let t0 = nowNanoseconds()
                    _ = try await log.append(batch, partition: 0)
                    samples.append(nowNanoseconds() - t0)
                }
                return samples
            }
        }
        var all: [UInt64] = []
        all.reserveCapacity(callers * perCaller)
        for try await part in group { all += part }
        return all
    }
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let coresBusy = (cpuSeconds() - cpuStart) / seconds
    let othersCores = LoadSnapshot.now().othersCores(since: loadStart)
    let end = try log.endOffset(partition: 0)
    try await log.close()
    guard end == Int64(1 + callers * perCaller) else { throw BenchError("log holds \(end) records, expected \(1 + callers * perCaller)") }
    return GroupCommitRun(callers: callers, perCaller: perCaller, seconds: seconds, latencies: Percentiles(samples), coresBusy: coresBusy, othersCores: othersCores)
}

/// CPU cost of filling 1,000-record `RecordBatchBuilder`s from the pool, without a log:
/// the part of (1) that the producer does before `append` compresses.
func buildOnly(records: Int, pool: EventPool) throws -> Double {
    let capacity = recordsPerBatch * (Int(pool.meanRecordBytes) + 8)
    var builder = RecordBatchBuilder(reservingCapacity: capacity)
    var sink = 0
    let start = nowNanoseconds()
    var poolIndex = 0
    for i in 0..<records {
        try builder.append(key: pool.keys[poolIndex], value: pool.values[poolIndex], timestamp: EventPool.timestamp(i))
        poolIndex += 1
        if poolIndex == pool.count { poolIndex = 0 }
        if builder.count == recordsPerBatch {
            sink &+= builder.byteCount
            builder.removeAll()
        }
    }
    let seconds = Double(nowNanoseconds() - start) / 1e9
    if sink == -1 { print(sink) }
    return Double(records) / seconds
}

/// CPU cost of choosing partitions for the pool's keys on one core, keys/s: through
/// `WriteAheadLog.partition(forKey:)` (what a producer calls; it is what (1)–(2) use)
/// and through `Partitioner.partition(forKey:partitionCount:)` directly.
func partitionerOnly(directory: String, records: Int, pool: EventPool) async throws -> (log: Double, partitioner: Double) {
    var options = LogOptions()
    options.partitionCount = 8
    let log = try await WriteAheadLog.open(at: directory, options: options)
    var sink = 0
    var start = nowNanoseconds()
    var poolIndex = 0
    for _ in 0..<records {
        sink &+= log.partition(forKey: pool.keys[poolIndex])
        poolIndex += 1
        if poolIndex == pool.count { poolIndex = 0 }
    }
    let viaLog = Double(records) / (Double(nowNanoseconds() - start) / 1e9)
    try await log.close()
    start = nowNanoseconds()
    poolIndex = 0
    for _ in 0..<records {
        sink &+= Partitioner.partition(forKey: pool.keys[poolIndex], partitionCount: 8)
        poolIndex += 1
        if poolIndex == pool.count { poolIndex = 0 }
    }
    let direct = Double(records) / (Double(nowNanoseconds() - start) / 1e9)
    if sink == -1 { print(sink) }
    return (viaLog, direct)
}
