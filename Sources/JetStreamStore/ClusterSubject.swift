import EventLog

/// Subjects of Backorder's messages (docs/CLUSTER.md, "Mapping"):
/// `bo.<group>.<partition>.<tenant>.<stream>`, with tenant and stream escaped so that
/// no `.`, `*`, `>`, white space or non-ASCII byte reaches a subject: every byte outside
/// `A-Z a-z 0-9 _ - : /` becomes `%XX` (so `%` itself is escaped and the mapping is
/// reversible). Stream ids of the domain (`record/R-1`) pass unchanged.
enum ClusterSubject {
    /// The subject of a Backorder stream.
    static func subject(group: String, partition: Int, tenant: String, stream: String) -> String {
        "bo.\(group).\(partition).\(escape(tenant)).\(escape(stream))"
    }

    /// The wildcard covering a group's subjects.
    static func wildcard(group: String) -> String { "bo.\(group).>" }

    /// The partition, tenant and stream a subject names; nil when it is not one of ours
    /// (a partition must be a number from 0: the subject comes from the server).
    static func parse(_ subject: String, group: String) -> (partition: Int, tenant: String, stream: String)? {
        let parts = subject.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "bo", parts[1] == group, let partition = Int(parts[2]), partition >= 0,
              let tenant = unescape(parts[3]), let stream = unescape(parts[4]) else { return nil }
        return (partition, tenant, stream)
    }

    static func escape(_ token: String) -> String {
        var out = ""
        out.reserveCapacity(token.utf8.count)
        for byte in token.utf8 {
            if isPlain(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%"
                out.unicodeScalars.append(hexDigit(byte >> 4))
                out.unicodeScalars.append(hexDigit(byte & 15))
            }
        }
        return out
    }

    static func unescape(_ token: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = token.utf8.makeIterator()
        while let byte = utf8.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = utf8.next().flatMap(ByteCoding.hexValue), let low = utf8.next().flatMap(ByteCoding.hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else {
                guard isPlain(byte) else { return nil }
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "/"): true
        default: false
        }
    }

    private static func hexDigit(_ value: UInt8) -> Unicode.Scalar {
        Unicode.Scalar(value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10)
    }

}
