import CZstd
import Foundation
import Testing
@testable import EventLog

/// The codecs on their own: every codec gives back what it was given, whatever the size;
/// zstd's per-thread contexts give the bytes a fresh context gives, on many threads at once
/// and on threads that end (their contexts freed).
@Suite struct CodecTests {
    static func input(_ seed: Int, count: Int) -> [UInt8] {
        // Text-like bytes with repeats, so that compressing has something to find.
        let words = Array(#"{"type":"OutOfStockReported","customerId":"C-000123","size":"M",}"#.utf8)
        return (0..<count).map { i in words[(i * 7 + seed + i / 64) % words.count] ^ UInt8((i / 500 + seed) % 3) }
    }

    static func roundTrip(_ codec: Codec, _ input: [UInt8]) throws -> (compressed: [UInt8], back: [UInt8]) {
        var compressed = [UInt8](repeating: 0, count: codec.compressBound(input.count))
        let written = try input.withUnsafeBytes { src in try compressed.withUnsafeMutableBytes { try codec.compress(src, into: $0) } }
        compressed.removeLast(compressed.count - written)
        var back = [UInt8](repeating: 0, count: input.count)
        let ok = compressed.withUnsafeBytes { src in back.withUnsafeMutableBytes { codec.decompress(src, into: $0) } }
        #expect(ok, "\(codec) did not decompress \(input.count) bytes")
        return (compressed, back)
    }

    @Test(arguments: Codec.allCases)
    func everyCodecGivesBackItsInput(codec: Codec) throws {
        for (seed, count) in [(1, 1), (2, 17), (3, 300), (4, 4_096), (5, 160_000), (6, 1 << 20)] {
            let input = Self.input(seed, count: count)
            #expect(try Self.roundTrip(codec, input).back == input, "\(codec), \(count) bytes")
        }
        // A wrong size or damaged bytes are refused, not read past.
        let (compressed, _) = try Self.roundTrip(codec, Self.input(7, count: 1_000))
        var short = [UInt8](repeating: 0, count: 999)
        #expect(!compressed.withUnsafeBytes { src in short.withUnsafeMutableBytes { codec.decompress(src, into: $0) } })
    }

    @Test func zstdContextsKeptPerThreadGiveTheBytesOfAFreshContext() throws {
        let inputs = (0..<24).map { Self.input($0, count: [40, 300, 5_000, 70_000][$0 % 4]) }
        let expected: [[UInt8]] = inputs.map { input in
            var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
            let n = input.withUnsafeBytes { src in out.withUnsafeMutableBytes { ZSTD_compress($0.baseAddress, $0.count, src.baseAddress, src.count, 1) } }
            #expect(ZSTD_isError(n) == 0)
            return Array(out.prefix(n))
        }
        // Threads that each use their contexts many times, then end (freeing them).
        let failures = Failures()
        let done = DispatchGroup()
        for t in 0..<8 {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                for round in 0..<50 {
                    let i = (t * 5 + round) % inputs.count
                    do {
                        let (compressed, back) = try Self.roundTrip(.zstd, inputs[i])
                        if compressed != expected[i] || back != inputs[i] { failures.add("thread \(t), input \(i)") }
                    } catch {
                        failures.add("thread \(t): \(error)")
                    }
                }
            }
        }
        done.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
    }

    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ failure: String) { lock.withLock { list.append(failure) } }
        var all: [String] { lock.withLock { list } }
    }
}
