/// How far each partition may be read, in the writing process, so that reading the
/// partitions merged by recorded time (`RecordedOrderReader`) gives every event in its
/// final place: no event read later can have been recorded before one already read.
///
/// Why a cut is needed: recorded times are assigned store-wide in the order of appending
/// (AppendPlan), but each partition acknowledges on its own fsync. When one append's batch
/// on partition 1 settles before an earlier append's batch on partition 0, the acknowledged
/// ends hold the later event and not the earlier one; a reader merging by recorded time
/// would deliver the later first and the earlier one on its next read — out of order for
/// a live feed or a paged read, whose resume points stay exact but whose order does not.
///
/// The cut is one recorded time for the whole store, the *watermark*: the oldest recorded
/// time of an event still in flight (submitted, not yet acknowledged by the log), or the
/// next time to be given when nothing is in flight. Every event recorded before it is
/// acknowledged, hence readable; every event at or after it is left out, in every
/// partition. The watermark only moves forward (events in flight only settle, and new ones
/// are recorded later than all before), so the ends never go back. (Acknowledged, not in the
/// index's rows: a reader reads the log, and a partition whose rows failed must not stop
/// every reader of the store until a reopen.)
///
/// A batch whose log write failed (its ticket failed: it was not acknowledged, and may never
/// be in the log) stops holding the watermark (`abandon`): else every reader of the store
/// would wait for it forever.
///
/// Memory: the recorded time of each event submitted and not yet below the watermark —
/// what is in flight, and what settled beside an older append still in flight.
struct RecordedOrderEnds {
    /// One submitted batch of a partition: its first offset and each event's recorded time.
    private struct Batch {
        let base: Int64
        let times: [Int64]
        var end: Int64 { base + Int64(times.count) }
    }

    /// Per partition, in offset order, the batches not yet known to lie below the watermark.
    private var batches: [[Batch]]
    /// The ends last returned (they must never go back).
    private var lastEnds: [Int64]

    /// Batches kept (for tests: settled ones must go).
    var batchesKept: Int { batches.reduce(0) { $0 + $1.count } }

    init(ends: [Int64]) {
        batches = Array(repeating: [], count: ends.count)
        lastEnds = ends
    }

    /// Records a batch submitted to `partition` at `base`, with its events' recorded times.
    mutating func submitted(partition: Int, base: Int64, times: [Int64]) {
        precondition(!times.isEmpty, "partition \(partition): an empty batch submitted at \(base)")
        if let last = batches[partition].last {
            precondition(last.end == base, "partition \(partition): a batch submitted at \(base) after one ending at \(last.end)")
            precondition(last.times[last.times.count - 1] < times[0], "partition \(partition): recorded times go back at offset \(base)")
        }
        batches[partition].append(Batch(base: base, times: times))
    }

    /// Forgets a batch whose log write failed (see the type's comment): it no longer holds
    /// the watermark, and the ends never pass the partition's acknowledged end, so its events
    /// are not read in recorded order until a reopen finds whatever of them the log kept.
    mutating func abandon(partition: Int, base: Int64) {
        batches[partition].removeAll { $0.base == base }
    }

    /// The watermark, after dropping the batches wholly below it: the oldest recorded time
    /// of an event in flight, else `lastRecordedTime + 1`. `acknowledged[p]`: the offset
    /// below which the log acknowledged partition p's events (a batch boundary).
    mutating func advance(acknowledged: [Int64], lastRecordedTime: Int64) -> Int64 {
        var watermark = lastRecordedTime == .max ? .max : lastRecordedTime + 1
        for partition in batches.indices {
            guard let inFlight = batches[partition].first(where: { $0.end > acknowledged[partition] }) else { continue }
            precondition(inFlight.base >= acknowledged[partition],
                         "partition \(partition): acknowledged to \(acknowledged[partition]), inside a batch at \(inFlight.base)")
            watermark = min(watermark, inFlight.times[0])
        }
        for partition in batches.indices {
            var drop = 0
            for batch in batches[partition] {
                guard batch.end <= acknowledged[partition], batch.times[batch.times.count - 1] < watermark else { break }
                drop += 1
            }
            if drop > 0 { batches[partition].removeFirst(drop) }
        }
        return watermark
    }

    /// Per partition, the offset of its first event recorded at or after the watermark, and
    /// never past its acknowledged end: below these ends every event is acknowledged, and
    /// none recorded before another left out.
    mutating func ends(acknowledged: [Int64], lastRecordedTime: Int64) -> [Int64] {
        let watermark = advance(acknowledged: acknowledged, lastRecordedTime: lastRecordedTime)
        var ends = acknowledged
        for partition in batches.indices {
            for batch in batches[partition] where batch.times[batch.times.count - 1] >= watermark {
                let k = batch.times.firstIndex { $0 >= watermark }!
                ends[partition] = min(batch.base + Int64(k), acknowledged[partition])
                break
            }
            precondition(ends[partition] >= lastEnds[partition],
                         "partition \(partition): readable in recorded order to \(ends[partition]), back from \(lastEnds[partition])")
        }
        lastEnds = ends
        return ends
    }
}
