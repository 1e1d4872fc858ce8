import Crypto
import EventLog
import Foundation

/// What a token may do.
public enum Role: String, Sendable, CaseIterable, Codable {
    /// Append events.
    case append
    /// Read events and query the views; follow live updates.
    case read
    /// Read records' full histories.
    case audit
    /// Take part in the tenant's consumer groups over HTTP (fetch, ack, nack, leave): moves
    /// their checkpoints, so it is more than `read`.
    case consume
    /// Everything, and the server's own routes (metrics).
    case admin
}

/// One access token as the server keeps it: never the token itself, only its SHA-256.
public struct TokenEntry: Sendable, Codable, Equatable {
    /// A short public name for the token (the first 12 hex digits of its hash), for `token
    /// list` and `token revoke`.
    public let id: String
    /// SHA-256 of the token, hex.
    public let sha256: String
    /// The tenant it may reach, or `*` for every tenant.
    public let tenant: String
    public let roles: [Role]
    /// When it was made (RFC 3339).
    public let created: String
    /// A note for people (who it is for).
    public let label: String?

    /// Whether it may reach `tenant`'s data.
    public func reaches(_ tenant: String) -> Bool { self.tenant == "*" || self.tenant == tenant }

    /// Whether it has `role` (admin has every role).
    public func allows(_ role: Role) -> Bool { roles.contains(role) || roles.contains(.admin) }
}

/// The tokens file: one JSON object per line (`TokenEntry`), written atomically through
/// `Storage`. The tokens themselves are shown once, when made, and never stored.
public struct TokenFile: Sendable {
    public let path: String
    public private(set) var entries: [TokenEntry]
    private let storage: any Storage

    /// Reads the file; a missing file holds no tokens. A malformed line is an error naming
    /// the file and the line.
    public static func load(_ path: String, storage: any Storage = PosixStorage()) throws -> TokenFile {
        try parse(try storage.readWholeFile(path) ?? [], path: path, storage: storage)
    }

    /// The tokens of a file's bytes (`path` names it in errors and is where `save` writes).
    static func parse(_ bytes: [UInt8], path: String, storage: any Storage) throws -> TokenFile {
        var entries: [TokenEntry] = []
        for (number, line) in bytes.split(separator: 10, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            do {
                entries.append(try JSONDecoder().decode(TokenEntry.self, from: Data(line)))
            } catch {
                throw TokenError.malformed(path: path, line: number + 1, reason: "\(error)")
            }
        }
        return TokenFile(path: path, entries: entries, storage: storage)
    }

    /// Makes a token for `tenant` with `roles`, adds its hash to the file and returns the
    /// token (the only time it is seen).
    public mutating func create(tenant: String, roles: [Role], label: String?) throws -> String {
        guard !roles.isEmpty else { throw TokenError.invalid("a token needs at least one role (\(Role.allCases.map(\.rawValue).joined(separator: ", ")))") }
        guard tenant == "*" || ((1...64).contains(tenant.utf8.count) && tenant.utf8.allSatisfy(Self.isTenantByte) && tenant.contains(where: { $0 != "." })) else {
            throw TokenError.invalid("tenant \"\(tenant)\" must be * or 1–64 characters of A–Z a–z 0–9 _ . -, not only dots")
        }
        var random = SystemRandomNumberGenerator()
        let secret = ByteCoding.hexString((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
        let token = "bo_" + secret
        let hash = Self.hash(token)
        entries.append(TokenEntry(id: String(hash.prefix(12)), sha256: hash, tenant: tenant, roles: roles,
                                  created: ISO8601DateFormatter().string(from: Date()), label: label))
        try save()
        return token
    }

    /// Removes the token with id `id`; false when there is none.
    public mutating func revoke(id: String) throws -> Bool {
        let before = entries.count
        entries.removeAll { $0.id == id }
        guard entries.count < before else { return false }
        try save()
        return true
    }

    /// The entry whose hash is the token's, if any.
    public func entry(for token: String) -> TokenEntry? {
        let hash = Self.hash(token)
        return entries.first { constantTimeEqual($0.sha256, hash) }
    }

    static func hash(_ token: String) -> String {
        ByteCoding.hexString(SHA256.hash(data: Data(token.utf8)))
    }

    private static func isTenantByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
    }

    private func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var bytes: [UInt8] = []
        for entry in entries {
            bytes += try encoder.encode(entry)
            bytes.append(10)
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        if !storage.exists(directory) { try storage.createDirectory(directory) }
        try storage.writeAtomically(bytes, directory: directory, name: url.lastPathComponent)
    }
}

/// Compares two hex digests without stopping at the first difference.
private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let (x, y) = (Array(a.utf8), Array(b.utf8))
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for i in x.indices { difference |= x[i] ^ y[i] }
    return difference == 0
}

/// Problems with the tokens file or a token's request.
public enum TokenError: Error, Sendable, CustomStringConvertible {
    case malformed(path: String, line: Int, reason: String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .malformed(path, line, reason): return "\(path): line \(line): not a token entry: \(reason)"
        case let .invalid(message): return message
        }
    }
}
