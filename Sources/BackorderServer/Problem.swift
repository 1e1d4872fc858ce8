import Foundation
import Hummingbird
import OutOfStock

/// An error answered as `application/problem+json` (RFC 9457): a status, a title, a
/// detail that says what is true — never a stack trace or a server path — and, for
/// rejected input, each line's error.
public struct Problem: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let detail: String
    /// Rejected lines (422).
    public var errors: [InputError] = []
    /// Extra headers (`Retry-After`, `ETag`).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"type":"about:blank","title":"#.utf8)
        JSONText.appendString(status.reasonPhrase, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        JSONText.appendInteger(Int64(status.code), to: &out)
        out.append(contentsOf: #","detail":"#.utf8)
        JSONText.appendString(detail, to: &out)
        if !errors.isEmpty {
            out.append(contentsOf: #","errors":["#.utf8)
            for (i, error) in errors.enumerated() {
                if i > 0 { out.append(44) }
                out.append(contentsOf: #"{"line":"#.utf8)
                JSONText.appendInteger(Int64(error.line), to: &out)
                out.append(contentsOf: #","field":"#.utf8)
                JSONText.appendString(error.field, to: &out)
                out.append(contentsOf: #","message":"#.utf8)
                JSONText.appendString(error.message, to: &out)
                out.append(125)
            }
            out.append(93)
        }
        out.append(contentsOf: "}\n".utf8)
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
    }
}
