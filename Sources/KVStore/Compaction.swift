import EventLog

/// One compaction: which files are merged into which level (docs/KVSTORE.md, "Compaction").
///
/// Only the files of the output level that actually receive keys are rewritten: a file
/// of that level whose key range no input block reaches is *kept* as it is, and the
/// outputs are cut around it. Keys that arrive in order (times, sequences) therefore touch
/// only the newest files, and the cost of a compaction follows what changed, not the
/// size of the level.
struct Compaction {
    /// The level the inputs come from, and the level the output goes to (equal for a
    /// merge of level-0 files among themselves).
    let level: Int
    let outputLevel: Int
    /// Files of `level`.
    let inputs: [TableHandle]
    /// Files of `outputLevel` whose range overlaps the inputs' range, in key order; `refine`
    /// splits them into those merged and those kept.
    var overlapping: [TableHandle]
    var kept: [TableHandle] = []
    /// Whether deletions may be dropped: no deeper level holds the inputs' key range.
    let isBottom: Bool

    var allInputs: [TableHandle] { inputs + overlapping }

    /// A move of one file to the next level without rewriting it (nothing overlaps there).
    var isTrivialMove: Bool { level > 0 && level != outputLevel && inputs.count == 1 && overlapping.isEmpty && kept.isEmpty }

    /// The level that needs compacting most (score ≥ 1), without any I/O: called under the
    /// store's lock.
    static func neededLevel(_ version: Version, options: KVOptions) -> Int? {
        if options.compactionStyle == .tiered { return tieredMerge(version, options: options) == nil ? nil : 0 }
        var best: (score: Double, level: Int)?
        let level0Score = Double(version.level0RunRanges.count) / Double(options.level0CompactionTrigger)
        if level0Score >= 1 { best = (level0Score, 0) }
        for level in 1..<(version.levels.count - 1) {
            let score = Double(version.bytes(level: level)) / Double(options.targetBytes(level: level))
            if score >= 1 && score > (best?.score ?? 0) { best = (score, level) }
        }
        return best?.level
    }

    /// The compaction the version needs most, or nil. `pointers` holds, per level, the
    /// largest key of the last file compacted from it, so that a level's files take turns.
    static func pick(_ version: Version, options: KVOptions, pointers: [[UInt8]]) -> Compaction? {
        if options.compactionStyle == .tiered {
            guard let count = tieredMerge(version, options: options) else { return nil }
            let ranges = version.level0RunRanges
            let inputs = Array(version.levels[0][0..<ranges[count - 1].upperBound])
            // Deletions go once nothing older remains beneath the merged runs.
            let bottom = count == ranges.count && version.levels.dropFirst().allSatisfy(\.isEmpty)
            return Compaction(level: 0, outputLevel: 0, inputs: inputs, overlapping: [], isBottom: bottom)
        }
        guard let level = neededLevel(version, options: options) else { return nil }
        let levels = version.levels
        if level == 0 {
            // The newest runs, while each is small, are merged into one run first: a writer
            // that commits often (a server's view publishing every few milliseconds) makes
            // many tiny runs, and merging each batch of them with everything in level 0, or
            // into level 1, would rewrite megabytes for kilobytes.
            let runs = version.level0Runs
            let smallRun = Int64(options.memtableBytes / 4)
            let newestSmall = runs.prefix { run in run.reduce(Int64(0)) { $0 + $1.info.size } <= smallRun }
            if newestSmall.count >= 2 && !levels[1].isEmpty {
                return Compaction(level: 0, outputLevel: 0, inputs: Array(newestSmall.joined()), overlapping: [], isBottom: false)
            }
            let inputs = levels[0]
            let (smallest, largest) = range(of: inputs)
            // Small level-0 files are merged among themselves first: pushing a few kilobytes
            // into level 1 would rewrite the level-1 files they reach, for little.
            let l0Bytes = inputs.reduce(Int64(0)) { $0 + $1.info.size }
            if l0Bytes * 8 < options.level1Bytes && !levels[1].isEmpty {
                return Compaction(level: 0, outputLevel: 0, inputs: inputs, overlapping: [], isBottom: false)
            }
            return Compaction(level: 0, outputLevel: 1, inputs: inputs, overlapping: levels[1].filter { $0.overlaps(smallest, largest) },
                              isBottom: isBottom(version, below: 1, smallest, largest))
        }
        let files = levels[level]
        let pointer = pointers[level]
        let chosen = files.first { pointer.isEmpty || pointer.lexicographicallyPrecedes($0.info.largest) } ?? files[0]
        let overlapping = levels[level + 1].filter { $0.overlaps(chosen.info.smallest, chosen.info.largest) }
        let (smallest, largest) = range(of: [chosen] + overlapping)
        return Compaction(level: level, outputLevel: level + 1, inputs: [chosen], overlapping: overlapping,
                          isBottom: isBottom(version, below: level + 1, smallest, largest))
    }

    /// How many of the newest level-0 runs a tiered store merges now, or nil: the longest
    /// run of newest runs in which each is no larger than the newer ones together, when it
    /// holds at least `level0CompactionTrigger` runs — so runs grow like a binary counter and
    /// a key is rewritten about log2(data / memtable) times. When level 0 nears its stop
    /// trigger without such a run (a small run left by a close in front of large ones),
    /// the newest `level0CompactionTrigger` runs are merged whatever their sizes.
    static func tieredMerge(_ version: Version, options: KVOptions) -> Int? {
        let ranges = version.level0RunRanges
        guard ranges.count >= 2 else { return nil }
        func size(_ run: Range<Int>) -> Int64 { version.levels[0][run].reduce(0) { $0 + $1.info.size } }
        var newer = size(ranges[0]), count = 1
        while count < ranges.count {
            let next = size(ranges[count])
            guard next <= newer else { break }
            newer += next
            count += 1
        }
        if count >= options.level0CompactionTrigger { return count }
        if ranges.count >= options.level0StopTrigger - 1 { return min(ranges.count, options.level0CompactionTrigger) }
        return nil
    }

    /// Splits `overlapping` into the files some input block reaches (merged) and the rest
    /// (kept), from the inputs' index blocks, which hold each block's first and last key.
    /// Conservative: a file is kept only when no input key can fall in its range.
    mutating func refine() throws {
        guard outputLevel != level, !overlapping.isEmpty else { return }
        // Per input file its blocks' ranges, in key order (their ends increase).
        let perFile = try inputs.map { try $0.reader().blockRanges(smallest: $0.info.smallest) }
        var merged: [TableHandle] = [], kept: [TableHandle] = []
        for file in overlapping {
            let reached = perFile.contains { ranges in
                // The first block whose last key is ≥ the file's smallest; it reaches the
                // file when it starts at or before the file's largest key.
                var low = 0, high = ranges.count
                while low < high {
                    let mid = (low + high) / 2
                    if ranges[mid].high.lexicographicallyPrecedes(file.info.smallest) { low = mid + 1 } else { high = mid }
                }
                return low < ranges.count && !file.info.largest.lexicographicallyPrecedes(ranges[low].low)
            }
            if reached { merged.append(file) } else { kept.append(file) }
        }
        overlapping = merged
        self.kept = kept
    }

    static func range(of files: [TableHandle]) -> ([UInt8], [UInt8]) {
        var smallest = files[0].info.smallest, largest = files[0].info.largest
        for file in files.dropFirst() {
            if file.info.smallest.lexicographicallyPrecedes(smallest) { smallest = file.info.smallest }
            if largest.lexicographicallyPrecedes(file.info.largest) { largest = file.info.largest }
        }
        return (smallest, largest)
    }

    private static func isBottom(_ version: Version, below level: Int, _ smallest: [UInt8], _ largest: [UInt8]) -> Bool {
        for deeper in (level + 1)..<version.levels.count where version.levels[deeper].contains(where: { $0.overlaps(smallest, largest) }) {
            return false
        }
        return true
    }

    /// An iterator over the inputs, newest first, that keeps deletions (each run read
    /// forward once by a `RunScanner`, outside the block cache).
    func makeInput() -> MergingIterator {
        var children: [SortedIterator] = []
        if level == 0 {
            // Newest run first (level 0 is listed that way).
            var runs: [[TableHandle]] = []
            for file in inputs {
                if let last = runs.last?.last, last.info.run == file.info.run { runs[runs.count - 1].append(file) } else { runs.append([file]) }
            }
            for run in runs { children.append(RunScanner(files: run)) }
        } else {
            children.append(RunScanner(files: inputs))
        }
        if !overlapping.isEmpty { children.append(RunScanner(files: overlapping)) }
        return MergingIterator(children)
    }
}

extension TableReader {
    /// The first and last key of every data block, in key order (from the index block).
    func blockRanges(smallest: [UInt8]) throws -> [(low: [UInt8], high: [UInt8])] {
        let index = try indexIterator()
        var out: [(low: [UInt8], high: [UInt8])] = []
        try index.seekToFirst()
        while index.isValid {
            guard let entry = TableFormat.Handle.decodeIndexValue(index.value) else {
                throw KVError.corrupt(path: path, offset: index.block.fileOffset, reason: "index entry does not hold a block handle")
            }
            out.append((Array(entry.firstKey), Array(index.key)))
            try index.next()
        }
        return out
    }
}
