import EventLog
import Logging

/// The server's tokens, read again from their file at most once per `interval`, when a
/// request needs them: `backorder token create` and `token revoke` take effect within that
/// time, without a restart. The file is small, so it is read whole and compared with the
/// bytes last read. A file that can no longer be read or parsed keeps the last good tokens
/// (the server does not open to everyone, nor shut everyone out, on an operator's typo),
/// and the log says so once per distinct problem.
public final class TokenRegistry: Sendable {
    private struct State: Sendable {
        var file: TokenFile
        var bytes: [UInt8]?
        var checked: ContinuousClock.Instant
        var problem: String?
    }

    public let path: String
    private let storage: any Storage
    private let interval: Duration
    private let logger: Logger
    private let state: ConditionLock<State>

    /// Reads the file now: a malformed file is an error (the server does not start on it).
    public init(path: String, storage: any Storage = PosixStorage(), interval: Duration = .seconds(1),
                logger: Logger = Logger(label: "backorder.tokens")) throws {
        precondition(interval >= .zero, "TokenRegistry: the interval must not be negative")
        let bytes = try storage.readWholeFile(path)
        self.path = path
        self.storage = storage
        self.interval = interval
        self.logger = logger
        state = ConditionLock(State(file: try TokenFile.parse(bytes ?? [], path: path, storage: storage), bytes: bytes, checked: .now))
    }

    /// The tokens as the file last read well holds them.
    public var entries: [TokenEntry] { current().entries }

    /// The entry whose hash is the token's, if any.
    public func entry(for token: String) -> TokenEntry? { current().entry(for: token) }

    private func current() -> TokenFile {
        state.withLock { state in
            let now = ContinuousClock.now
            guard now - state.checked >= interval else { return state.file }
            state.checked = now
            do {
                let bytes = try storage.readWholeFile(path)
                guard bytes != state.bytes else { return state.file }
                let file = try TokenFile.parse(bytes ?? [], path: path, storage: storage)
                let (before, after) = (state.file.entries.count, file.entries.count)
                state.file = file
                state.bytes = bytes
                state.problem = nil
                logger.notice("tokens read again from \(path): \(after) tokens (were \(before))")
            } catch {
                let problem = "\(error)"
                if state.problem != problem {
                    logger.error("tokens file \(path) could not be read again (\(problem)); the \(state.file.entries.count) tokens read before stay in force")
                    state.problem = problem
                }
            }
            return state.file
        }
    }
}
