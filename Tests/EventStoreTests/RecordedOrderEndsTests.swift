import Testing
@testable import EventStore

/// The cut readers in recorded order stop at (`RecordedOrderEnds`), on batches submitted
/// and acknowledged by hand: times 10, 11, … as AppendPlan gives them, store-wide.
@Suite struct RecordedOrderEndsTests {
    @Test func nothingInFlightReadsToTheNextOffsets() {
        var cut = RecordedOrderEnds(ends: [4, 7])
        #expect(cut.ends(acknowledged: [4, 7], lastRecordedTime: 9) == [4, 7])
    }

    /// One append's events alternate over two partitions (times 10, 12 on partition 0,
    /// 11 on partition 1): with partition 1 in flight, partition 0 is read to its event
    /// recorded before 11, not to the end of its batch; then to its end once 11 settles.
    @Test func theCutFallsInsideABatchSettledBesideAnEarlierOneInFlight() {
        var cut = RecordedOrderEnds(ends: [0, 0])
        cut.submitted(partition: 0, base: 0, times: [10, 12])
        cut.submitted(partition: 1, base: 0, times: [11])
        #expect(cut.ends(acknowledged: [0, 0], lastRecordedTime: 12) == [0, 0])
        #expect(cut.ends(acknowledged: [2, 0], lastRecordedTime: 12) == [1, 0])
        #expect(cut.ends(acknowledged: [2, 1], lastRecordedTime: 12) == [2, 1])
    }

    /// A partition with nothing in flight is read to its acknowledged end, which an event
    /// submitted after the cut was taken (not yet known to it) is beyond.
    @Test func aPartitionWithNothingInFlightStopsAtItsAcknowledgedEnd() {
        var cut = RecordedOrderEnds(ends: [0, 3])
        cut.submitted(partition: 0, base: 0, times: [10])
        #expect(cut.ends(acknowledged: [0, 3], lastRecordedTime: 10) == [0, 3])
    }

    /// A batch whose log write failed may never be acknowledged: once abandoned it no
    /// longer holds back the other partitions' readers, and its own partition is read no
    /// further than its acknowledged end.
    @Test func anAbandonedBatchDoesNotHoldTheOthers() {
        var cut = RecordedOrderEnds(ends: [0, 0])
        cut.submitted(partition: 0, base: 0, times: [10])
        cut.submitted(partition: 1, base: 0, times: [11])
        #expect(cut.ends(acknowledged: [0, 1], lastRecordedTime: 11) == [0, 0])
        cut.abandon(partition: 0, base: 0)
        #expect(cut.ends(acknowledged: [0, 1], lastRecordedTime: 11) == [0, 1])
    }

    /// A batch not yet acknowledged holds the others for as long as it takes.
    @Test func aBatchInFlightHoldsTheOthers() {
        var cut = RecordedOrderEnds(ends: [0, 0])
        cut.submitted(partition: 0, base: 0, times: [10])
        cut.submitted(partition: 1, base: 0, times: [11])
        for _ in 0..<3 { #expect(cut.ends(acknowledged: [0, 1], lastRecordedTime: 11) == [0, 0]) }
    }

    /// Batches wholly below the watermark are let go of as they are acknowledged, whether or
    /// not a reader asked (their times are the cut's only memory).
    @Test func settledBatchesAreLetGo() {
        var cut = RecordedOrderEnds(ends: [0, 0])
        for k in 0..<1_000 {
            cut.submitted(partition: k % 2, base: Int64(k / 2), times: [Int64(10 + k)])
            let acknowledged = [Int64((k + 2) / 2), Int64((k + 1) / 2)]
            _ = cut.advance(acknowledged: acknowledged, lastRecordedTime: Int64(10 + k))
        }
        #expect(cut.batchesKept == 0)
    }
}
