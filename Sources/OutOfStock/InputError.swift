/// A rejected input line: where (line number, field path) and which rule.
public struct InputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line number in the input (0 when not tied to a line).
    public var line: Int
    /// Dot path of the offending field from the envelope root (`data.quantity`), or "" for the whole line.
    public var field: String
    /// What is wrong, as a sentence.
    public var message: String

    /// An input error.
    public init(line: Int, field: String, message: String) {
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "line \(line): \(message)" : "line \(line): field \(field): \(message)"
    }
}
