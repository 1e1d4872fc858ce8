/// The signed-off heads of a log: for each partition, its end offset and the chain hash of
/// the batch ending there (docs/AUDIT.md). Printed by `backorder audit head` and kept
/// somewhere the log's writers cannot reach, they let a later `audit verify --expect-head`
/// prove that nothing up to those offsets was changed, removed or rewritten since.
///
/// Text, one fact a line:
///
/// ```
/// backorder-heads 1
/// log-id 3f2a9c0d5e6b7f8a1b2c3d4e5f607182
/// partition 0 end 52311 chain 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
/// ```
public struct ChainHeads: Sendable, Equatable {
    /// One partition's head.
    public struct Head: Sendable, Equatable {
        /// The partition.
        public var partition: Int
        /// The offset after the last event covered (0: the empty partition).
        public var endOffset: Int64
        /// The chain hash of the batch that ends at `endOffset` (the genesis hash at 0).
        public var chain: ChainHash

        /// A head.
        public init(partition: Int, endOffset: Int64, chain: ChainHash) {
            self.partition = partition
            self.endOffset = endOffset
            self.chain = chain
        }
    }

    /// The log's id from its manifest ("-" when it has none).
    public var logID: String
    /// One head per partition, in partition order.
    public var heads: [Head]

    /// Heads of a log.
    public init(logID: String, heads: [Head]) {
        self.logID = logID
        self.heads = heads
    }

    /// The text form.
    public var text: String {
        var text = "backorder-heads 1\nlog-id \(logID)\n"
        for head in heads { text += "partition \(head.partition) end \(head.endOffset) chain \(head.chain)\n" }
        return text
    }

    /// Parses the text form; the error names the file and line.
    public static func parse(_ text: String, path: String) throws -> ChainHeads {
        func bad(_ line: Int, _ why: String) -> LogError { .invalidArgument("\(path), line \(line): \(why)") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        guard lines.first == "backorder-heads 1" else { throw bad(1, "expected \"backorder-heads 1\" (not a heads file)") }
        guard lines.count > 1, lines[1].hasPrefix("log-id ") else { throw bad(2, "expected \"log-id ID\"") }
        var heads = ChainHeads(logID: String(lines[1].dropFirst(7)), heads: [])
        for (i, line) in lines.enumerated().dropFirst(2) where !line.isEmpty {
            let words = line.split(separator: " ")
            guard words.count == 6, words[0] == "partition", words[2] == "end", words[4] == "chain",
                  let partition = Int(words[1]), partition >= 0, let end = Int64(words[3]), end >= 0,
                  let chain = ChainHash(hex: words[5]) else {
                throw bad(i + 1, "expected \"partition N end OFFSET chain HEX64\", found \"\(line)\"")
            }
            guard !heads.heads.contains(where: { $0.partition == partition }) else { throw bad(i + 1, "partition \(partition) appears twice") }
            heads.heads.append(Head(partition: partition, endOffset: end, chain: chain))
        }
        return heads
    }
}
