import CMallocTuning
import Testing

/// `backorder` caps glibc's malloc arenas at start (bench/RESULTS.md: ~55 MB of an append's
/// peak). The shim must reach glibc's `mallopt`: a build where its guard hid the call
/// returned 0 and left the cap unset without a word.
@Suite struct MallocTuningTests {
    @Test func glibcAcceptsTheArenaCap() {
        #if os(Linux)
        #expect(backorder_limit_malloc_arenas(2) == 1)
        #endif
    }
}
