import Crypto
import EventLog
import Foundation
import Hummingbird

/// Entity tags (RFC 9110, 8.8.3): a strong tag of an answer's bytes, and the check of a
/// request's `If-None-Match` against a tag.
enum EntityTag {
    /// A quoted tag naming `bytes` (the first 12 bytes of their SHA-256, hex): equal
    /// answers get equal tags, in any process.
    static func of(_ bytes: [UInt8]) -> String {
        "\"" + ByteCoding.hexString(SHA256.hash(data: bytes).prefix(12)) + "\""
    }

    /// Whether the request's `If-None-Match` names `tag` (or is `*`).
    static func matches(_ request: Request, _ tag: String) -> Bool {
        guard let header = request.headers[.ifNoneMatch] else { return false }
        return header.split(separator: ",").contains { candidate in
            let trimmed = candidate.trimmingCharacters(in: .whitespaces)
            return trimmed == tag || trimmed == "*" || trimmed == "W/" + tag
        }
    }

    /// `304` with `tag` (and `headers`) when the request's `If-None-Match` names it; else
    /// `answer()` with them added. Every conditional route answers through this.
    static func conditional(_ request: Request, _ tag: String, headers: HTTPFields = [:], _ answer: () throws -> Response) rethrows -> Response {
        var fields = headers
        fields[.eTag] = tag
        if matches(request, tag) { return Response(status: .notModified, headers: fields) }
        var response = try answer()
        response.headers.append(contentsOf: fields)
        return response
    }
}

/// A JSON answer and its entity tag, computed once (the dashboard cache keeps both).
struct TaggedJSON: Sendable {
    let bytes: [UInt8]
    let etag: String

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        etag = EntityTag.of(bytes)
    }

    /// The answer with its `ETag`, or `304` when the request's `If-None-Match` names it.
    func response(to request: Request) -> Response {
        EntityTag.conditional(request, etag) { TenantRoutes.json(bytes) }
    }
}
