import EventStore
import Foundation
import Hummingbird
import OutOfStock

/// The append routes: `POST /v1/tenants/{t}/events` (any streams of the tenant) and `POST
/// /v1/tenants/{t}/streams/{kind}/{id}` (one stream, with `If-Match` / `If-None-Match` on
/// its version). Each request is one atomic append (docs/SERVER.md, "Appends").
extension TenantRoutes {
    @Sendable func append(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.append)
        let start = ContinuousClock.now
        let bytes = try await body(request)
        let report = try await ingest(tenant: tenant, bytes, stream: nil, expectVersion: nil, context)
        if report.rejected > 0 { throw Self.rejected(report) }
        record(report, since: start)
        return Self.json(Self.appendResult(report), status: report.appended > 0 ? .created : .ok)
    }

    /// Appends to one stream. `If-Match: "N"`: the stream must be at version N;
    /// `If-None-Match: *`: it must not exist yet. A stream elsewhere answers `412` with its
    /// version as `ETag`; success answers it as it is after the append.
    @Sendable func appendToStream(_ request: Request, context: ServerContext) async throws -> Response {
        let tenant = try context.tenant(.append)
        let start = ContinuousClock.now
        let stream = try Self.stream(context)
        var expected: Int64?
        if let match = request.headers[.ifMatch] {
            let digits = match.replacingOccurrences(of: "W/", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            guard let version = Int64(digits), version >= 0 else {
                throw Problem(.badRequest, "If-Match: \(match) is not a stream version; send the ETag of the stream as read (\"3\")")
            }
            expected = version
        }
        if let noneMatch = request.headers[.ifNoneMatch] {
            guard noneMatch.trimmingCharacters(in: .whitespaces) == "*", expected == nil else {
                throw Problem(.badRequest, "If-None-Match takes * (the stream must not exist yet), and not together with If-Match")
            }
            expected = 0
        }
        if let expected {
            let current = try await served.backend.version(tenant: tenant, stream: stream)
            if current != expected { throw Self.preconditionFailed(stream, current: current, expected: expected) }
        }
        let bytes = try await body(request)
        let report = try await ingest(tenant: tenant, bytes, stream: stream, expectVersion: expected, context)
        if report.rejected > 0 {
            // Another request moved the stream between the check above and the append.
            if let expected, report.errors.allSatisfy({ $0.field == "expectedVersion" }) {
                throw Self.preconditionFailed(stream, current: try await served.backend.version(tenant: tenant, stream: stream), expected: expected)
            }
            throw Self.rejected(report)
        }
        record(report, since: start)
        var response = Self.json(Self.appendResult(report), status: report.appended > 0 ? .created : .ok)
        let version: Int64
        if let expected { version = expected + Int64(report.appended) } else { version = try await served.backend.version(tenant: tenant, stream: stream) }
        response.headers[.eTag] = "\"\(version)\""
        return response
    }

    /// The request's events as NDJSON, within the body and line limits.
    private func body(_ request: Request) async throws -> [UInt8] {
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: served.options.maxBodyBytes) } catch {
            throw Problem(.contentTooLarge, "the body is larger than the limit of \(served.options.maxBodyBytes) bytes; send the events in several requests")
        }
        let bytes = try Self.ndjson(body, contentType: request.headers[.contentType])
        var lines = 0
        for byte in bytes where byte == 10 { lines += 1 }
        if bytes.last.map({ $0 != 10 }) ?? false { lines += 1 }
        guard lines > 0 else { throw Problem(.badRequest, "the body holds no events; send NDJSON (one event per line) or a JSON array of events") }
        guard lines <= served.options.maxEventsPerRequest else {
            throw Problem(.contentTooLarge, "\(lines) lines in one request; the limit is \(served.options.maxEventsPerRequest) (each request is one atomic append)")
        }
        return bytes
    }

    private func ingest(tenant: String, _ bytes: [UInt8], stream: String?, expectVersion: Int64?, _ context: ServerContext) async throws -> IngestReport {
        let report: IngestReport
        do { report = try await served.append(tenant: tenant, body: bytes, stream: stream, expectVersion: expectVersion) } catch let failure as IngestFailure {
            served.metrics.eventsAppended.increment(by: Int64(failure.report.appended))
            throw Self.problem(failure.underlying, stored: failure.report.appended, context)
        } catch {
            throw Self.problem(error, stored: 0, context)
        }
        served.metrics.eventsAppended.increment(by: Int64(report.appended))
        served.metrics.eventsDuplicate.increment(by: Int64(report.duplicates))
        served.metrics.linesRejected.increment(by: Int64(report.rejected))
        return report
    }

    private func record(_ report: IngestReport, since start: ContinuousClock.Instant) {
        served.metrics.appendSeconds.record(ContinuousClock.now - start)
        served.metrics.appendEvents.record(Double(report.appended))
    }

    static func rejected(_ report: IngestReport) -> Problem {
        var problem = Problem(.unprocessableContent, "\(report.rejected) of \(report.lines) lines rejected; nothing was appended")
        problem.errors = report.errors
        return problem
    }

    static func preconditionFailed(_ stream: String, current: Int64, expected: Int64) -> Problem {
        var problem = Problem(.preconditionFailed, "stream \(stream) is at version \(current), not \(expected); nothing was appended (read it again and decide anew)")
        problem.headers[.eTag] = "\"\(current)\""
        return problem
    }

    static func appendResult(_ report: IngestReport) -> [UInt8] {
        var out: [UInt8] = Array(#"{"lines":"#.utf8)
        JSONText.appendInteger(Int64(report.lines), to: &out)
        out += Array(#","appended":"#.utf8)
        JSONText.appendInteger(Int64(report.appended), to: &out)
        out += Array(#","duplicates":"#.utf8)
        JSONText.appendInteger(Int64(report.duplicates), to: &out)
        out += Array(#","positions":["#.utf8)
        for (i, (partition, range)) in report.ranges.sorted(by: { $0.key < $1.key }).enumerated() {
            let item: String = (i > 0 ? "," : "") + #"{"partition":\#(partition),"first":\#(range.lowerBound),"last":\#(range.upperBound)}"#
            out += Array(item.utf8)
        }
        out += Array(#"],"assignedIds":["#.utf8)
        for (i, assigned) in report.assignedIDs.enumerated() {
            let item: String = (i > 0 ? "," : "") + #"{"line":\#(assigned.line),"id":"\#(assigned.id)"}"#
            out += Array(item.utf8)
        }
        out += Array("]}\n".utf8)
        return out
    }

    /// The body as NDJSON: NDJSON as sent, or a JSON array of objects turned into lines.
    static func ndjson(_ body: ByteBuffer, contentType: String?) throws -> [UInt8] {
        let bytes = Array(body.readableBytesView)
        guard let first = bytes.first(where: { $0 != 32 && $0 != 9 && $0 != 10 && $0 != 13 }), first == UInt8(ascii: "[") else { return bytes }
        guard let array = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [Any] else {
            throw Problem(.badRequest, "the body starts with [ but is not a JSON array; send NDJSON (one event per line) or a JSON array of events")
        }
        var out: [UInt8] = []
        for (i, element) in array.enumerated() {
            guard JSONSerialization.isValidJSONObject(element), let line = try? JSONSerialization.data(withJSONObject: element) else {
                throw Problem(.unprocessableContent, "element \(i + 1) of the array is not a JSON object")
            }
            out += line
            out.append(10)
        }
        return out
    }

    /// What a failed append answers. The producer's own conflicts say what they are; a
    /// failure of the store (I/O, a full disk, a stopped partition) is logged whole and
    /// answered `503` without its details (they name the server's files).
    static func problem(_ error: any Error, stored: Int, _ context: ServerContext) -> Problem {
        let storedNote = "\(stored) events of this request were stored before the failure (resending lines that carry an id is safe)"
        switch error as? EventStoreError {
        case .wrongExpectedVersion?, .idConflict?:
            return Problem(.conflict, "\(error); \(storedNote)")
        case .invalidArgument?:
            return Problem(.unprocessableContent, "\(error); \(storedNote)")
        case .unavailable?:
            // The cluster did not answer, or appends are stopped until it does: not the
            // request's fault, and over soon.
            return unavailable(error, "the store cannot append for now (the server's log says why); try again shortly; \(storedNote)", retryAfter: 1, context)
        default:
            return unavailable(error, "the store could not append (the server's log says why); \(storedNote)", retryAfter: 5, context)
        }
    }

    /// A `503` saying `message`; the error itself (it may name files or the cluster) goes
    /// to the server's log.
    private static func unavailable(_ error: any Error, _ message: String, retryAfter seconds: Int, _ context: ServerContext) -> Problem {
        context.logger.error("append failed: \(error)")
        var problem = Problem(.serviceUnavailable, message)
        problem.headers[.retryAfter] = String(seconds)
        return problem
    }
}
