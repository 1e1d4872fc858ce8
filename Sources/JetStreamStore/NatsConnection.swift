import CNats
import EventStore
import Foundation

/// A failure talking to NATS or JetStream, with what was being done.
public struct NatsError: Error, Sendable, CustomStringConvertible {
    /// The client library's status name (e.g. `NATS_TIMEOUT`).
    public let status: String
    /// JetStream's error code (0: none), e.g. 10071 for a wrong last sequence.
    public let code: Int
    /// What was being done, and the server's or library's text.
    public let message: String

    /// JetStream's "wrong last sequence": the expected-version header did not match.
    public var isWrongLastSequence: Bool { code == Int(JSStreamWrongLastSequenceErr.rawValue) }
    /// Worth retrying with the same headers: no stream leader, a timeout, a lost connection.
    public var isTransient: Bool {
        ["NATS_TIMEOUT", "NATS_NO_RESPONDERS", "NATS_CONNECTION_DISCONNECTED", "NATS_IO_ERROR", "NATS_NO_SERVER",
         "NATS_CONNECTION_CLOSED", "NATS_STALE_CONNECTION"].contains(status)
            || code == 10008 /* JSClusterNotAvailErr */ || code == 10074 /* JSClusterNoPeersErr */
    }

    public var description: String {
        "\(message) (\(status)\(code != 0 ? ", JetStream error \(code)" : ""))"
    }

    init(status: String, code: Int, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    init(_ status: natsStatus, _ code: jsErrCode = jsErrCode(0), doing: String) {
        self.status = Self.name(status)
        self.code = Int(code.rawValue)
        // The library's last error on this thread, if it is about this status (it may be
        // left over from an earlier call otherwise).
        var last = natsStatus(0)
        let detail = nats_GetLastError(&last).map { String(cString: $0) }
        let text = (last == status ? detail : nil) ?? String(cString: natsStatus_GetText(status))
        self.message = "\(doing): \(text)"
    }

    static func name(_ status: natsStatus) -> String {
        switch status {
        case NATS_TIMEOUT: "NATS_TIMEOUT"
        case NATS_NO_RESPONDERS: "NATS_NO_RESPONDERS"
        case NATS_CONNECTION_DISCONNECTED: "NATS_CONNECTION_DISCONNECTED"
        case NATS_CONNECTION_CLOSED: "NATS_CONNECTION_CLOSED"
        case NATS_IO_ERROR: "NATS_IO_ERROR"
        case NATS_NO_SERVER: "NATS_NO_SERVER"
        case NATS_STALE_CONNECTION: "NATS_STALE_CONNECTION"
        case NATS_NOT_FOUND: "NATS_NOT_FOUND"
        case NATS_ERR: "NATS_ERR"
        default: "NATS_STATUS_\(status.rawValue)"
        }
    }
}

/// A message read from a JetStream stream.
struct StreamMessage: Sendable {
    /// Its subject.
    var subject: String
    /// Its payload (empty for a headers-only delivery).
    var payload: [UInt8]
    /// The Backorder event id it carries (header `Backorder-Event-Id`), if any.
    var eventID: EventID?
    /// Its stream version, from its `Nats-Msg-Id` (`<subject>#<version>`), if it has one.
    var version: Int64? = nil
    /// Its stream sequence (1, 2, 3 …).
    var sequence: UInt64
    /// When the stream stored it, ns since the Unix epoch.
    var timestampNanoseconds: Int64
}

/// What a stream holds, from `STREAM.INFO`.
public struct StreamStatus: Sendable {
    /// Messages stored.
    public var messages: UInt64
    /// Bytes stored.
    public var bytes: UInt64
    /// The last stream sequence (0: empty).
    public var lastSequence: UInt64
    /// When the stream was created, ns since the Unix epoch (its identity with the name).
    public var createdNanoseconds: Int64
    /// The stream's description (Backorder keeps its partition count there).
    public var description: String
    /// Replicas configured.
    public var replicas: Int
    /// The node leading the stream's Raft group, if known.
    public var leader: String?
    /// The other replicas: name, whether current, lag in operations.
    public var peers: [(name: String, current: Bool, offline: Bool, lag: UInt64)]
}

/// The JetStream stream's configuration as Backorder creates it.
struct StreamSpec {
    var name: String
    var subjects: String
    var replicas: Int
    var description: String
    var duplicateWindowNanoseconds: Int64 = 120 * 1_000_000_000
}

/// One connection to a NATS cluster with its JetStream context (nats.c). Every call
/// blocks its thread until the server answers or `requestTimeoutMilliseconds` passes, so
/// callers run them off the cooperative pool (`ClusterPublisher` has threads of its own;
/// reads are short and made by command-line tools). nats.c connections are thread-safe.
final class NatsConnection: @unchecked Sendable {
    private let connection: OpaquePointer
    let context: OpaquePointer  // the JetStream context (NatsKeyValue opens buckets with it)
    let requestTimeoutMilliseconds: Int64
    /// How long reads are retried through leader elections and reconnects.
    let retrySeconds: Double
    let urls: String

    /// Connects to any of `urls` (comma-separated `nats://host:port`), reconnecting to the
    /// others on failure.
    init(urls: String, name: String, requestTimeoutMilliseconds: Int64 = 5_000, retrySeconds: Double = 30) throws {
        try Self.libraryOpened.get()
        self.urls = urls
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.retrySeconds = retrySeconds
        var options: OpaquePointer?
        var status = natsOptions_Create(&options)
        guard status == NATS_OK, let options else { throw NatsError(status, doing: "creating connection options") }
        defer { natsOptions_Destroy(options) }
        let servers = urls.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) }
        guard !servers.isEmpty else { throw NatsError(NATS_ADDRESS_MISSING, doing: "no cluster URL given") }
        var cStrings = servers.map { strdup($0) }
        defer { for p in cStrings { free(p) } }
        status = cStrings.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { natsOptions_SetServers(options, $0.baseAddress, Int32($0.count)) }
        }
        guard status == NATS_OK else { throw NatsError(status, doing: "cluster URLs \(urls)") }
        _ = natsOptions_SetName(options, name)
        _ = natsOptions_SetTimeout(options, 2_000)
        _ = natsOptions_SetMaxReconnect(options, -1)  // keep trying: a node may be restarting
        _ = natsOptions_SetReconnectWait(options, 250)
        _ = natsOptions_SetRetryOnFailedConnect(options, false, nil, nil)
        var connection: OpaquePointer?
        status = natsConnection_Connect(&connection, options)
        guard status == NATS_OK, let connection else { throw NatsError(status, doing: "connecting to \(urls)") }
        var jsOpts = jsOptions()
        jsOptions_Init(&jsOpts)
        jsOpts.Wait = requestTimeoutMilliseconds
        var context: OpaquePointer?
        status = natsConnection_JetStream(&context, connection, &jsOpts)
        guard status == NATS_OK, let context else {
            natsConnection_Destroy(connection)
            throw NatsError(status, doing: "opening JetStream on \(urls)")
        }
        self.connection = connection
        self.context = context
    }

    /// Opens the library once, before any connection, without lock spinning: nats.c spins
    /// 2,000 times on a busy mutex by default, which on a machine with fewer cores than
    /// publishing lanes burns the CPU the lanes and the servers need (measured: spinning
    /// in `natsMutex_Lock` was 22 % of the client's profile).
    private static let libraryOpened: Result<Void, NatsError> = {
        let status = nats_Open(0)
        return status == NATS_OK ? .success(()) : .failure(NatsError(status, doing: "opening the NATS client library"))
    }()

    deinit {
        jsCtx_Destroy(context)
        natsConnection_Close(connection)
        natsConnection_Destroy(connection)
    }

    /// Runs a read until it succeeds, fails for good, or `retrySeconds` of transient
    /// failures (no stream leader, timeouts, reconnects) pass.
    func retrying<T>(_ read: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(retrySeconds)
        while true {
            do { return try read() } catch let error as NatsError where error.isTransient && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }

    /// The stream's state, or nil when there is no such stream.
    func streamStatus(_ name: String) throws -> StreamStatus? {
        try retrying { try streamStatusOnce(name) }
    }

    private func streamStatusOnce(_ name: String) throws -> StreamStatus? {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status = js_GetStreamInfo(&info, context, name, nil, &code)
        if status == NATS_NOT_FOUND || code == JSStreamNotFoundErr { return nil }
        guard status == NATS_OK, let info else { throw NatsError(status, code, doing: "reading the state of stream \(name)") }
        defer { jsStreamInfo_Destroy(info) }
        return Self.status(of: info.pointee)
    }

    private static func status(of info: jsStreamInfo) -> StreamStatus {
        var peers: [(name: String, current: Bool, offline: Bool, lag: UInt64)] = []
        var leader: String?
        if let cluster = info.Cluster?.pointee {
            leader = cluster.Leader.map { String(cString: $0) }
            for k in 0..<Int(cluster.ReplicasLen) {
                guard let peer = cluster.Replicas?[k]?.pointee else { continue }
                peers.append((peer.Name.map { String(cString: $0) } ?? "?", peer.Current, peer.Offline, peer.Lag))
            }
        }
        let config = info.Config?.pointee
        return StreamStatus(
            messages: info.State.Msgs, bytes: info.State.Bytes, lastSequence: info.State.LastSeq, createdNanoseconds: info.Created,
            description: config?.Description.map { String(cString: $0) } ?? "", replicas: Int(config?.Replicas ?? 1),
            leader: leader, peers: peers)
    }

    /// Creates the stream (an event store keeps history: no limits, no deletes, no purges).
    func createStream(_ spec: StreamSpec) throws -> StreamStatus {
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status: natsStatus = spec.name.withCString { name in
            spec.subjects.withCString { subject in
                spec.description.withCString { description in
                    var subjects: [UnsafePointer<CChar>?] = [subject]
                    return subjects.withUnsafeMutableBufferPointer { list in
                        config.Name = name
                        config.Description = description
                        config.Subjects = list.baseAddress
                        config.SubjectsLen = 1
                        config.Storage = js_FileStorage
                        config.Retention = js_LimitsPolicy
                        config.Discard = js_DiscardNew
                        config.Replicas = Int64(spec.replicas)
                        config.Duplicates = spec.duplicateWindowNanoseconds
                        config.DenyDelete = true
                        config.DenyPurge = true
                        config.AllowDirect = false
                        return js_AddStream(&info, context, &config, nil, &code)
                    }
                }
            }
        }
        guard status == NATS_OK, let info else { throw NatsError(status, code, doing: "creating stream \(spec.name) (R\(spec.replicas))") }
        defer { jsStreamInfo_Destroy(info) }
        return Self.status(of: info.pointee)
    }

    /// Publishes one message with its headers and waits for the stream's acknowledgement.
    func publish(subject: String, payload: [UInt8], headers: [(String, String)]) throws -> (sequence: UInt64, duplicate: Bool) {
        var message: OpaquePointer?
        var status = payload.withUnsafeBufferPointer { bytes in
            natsMsg_Create(&message, subject, nil, UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        }
        guard status == NATS_OK, let message else { throw NatsError(status, doing: "building a message for \(subject)") }
        defer { natsMsg_Destroy(message) }
        for (key, value) in headers {
            status = natsMsgHeader_Set(message, key, value)
            guard status == NATS_OK else { throw NatsError(status, doing: "setting header \(key)") }
        }
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(0)
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = requestTimeoutMilliseconds
        status = js_PublishMsg(&ack, context, message, &options, &code)
        guard status == NATS_OK, let ack else { throw NatsError(status, code, doing: "publishing to \(subject)") }
        defer { jsPubAck_Destroy(ack) }
        return (ack.pointee.Sequence, ack.pointee.Duplicate)
    }

    /// The message at `sequence`, or nil when there is none.
    func message(stream: String, sequence: UInt64) throws -> StreamMessage? {
        try storedMessage(doing: "reading message \(sequence) of \(stream)") { js_GetMsg(&$0, context, stream, sequence, nil, &$1) }
    }

    /// The last message on `subject`, or nil when the subject has none.
    func lastMessage(stream: String, subject: String) throws -> StreamMessage? {
        try storedMessage(doing: "reading the last message of \(subject)") { js_GetLastMsg(&$0, context, stream, subject, nil, &$1) }
    }

    /// One message read from the stream leader by `get` (`STREAM.MSG.GET`), retried
    /// through elections; nil when the server has no such message.
    private func storedMessage(doing: String, _ get: (inout OpaquePointer?, inout jsErrCode) -> natsStatus) throws -> StreamMessage? {
        try retrying {
            var message: OpaquePointer?
            var code = jsErrCode(0)
            let status = get(&message, &code)
            if status == NATS_NOT_FOUND || code == JSNoMessageFoundErr { return nil }
            guard status == NATS_OK, let message else { throw NatsError(status, code, doing: doing) }
            defer { natsMsg_Destroy(message) }
            return Self.streamMessage(message, sequence: natsMsg_GetSequence(message), time: natsMsg_GetTime(message))
        }
    }

    static func streamMessage(_ message: OpaquePointer, sequence: UInt64, time: Int64) -> StreamMessage {
        let length = Int(natsMsg_GetDataLength(message))
        var payload: [UInt8] = []
        if length > 0, let data = natsMsg_GetData(message) {
            payload = Array(UnsafeRawBufferPointer(start: data, count: length))
        }
        var id: UnsafePointer<CChar>?
        let eventID = natsMsgHeader_Get(message, ClusterHeaders.eventID, &id) == NATS_OK ? id.flatMap { EventID(String(cString: $0)) } : nil
        var messageID: UnsafePointer<CChar>?
        let version = natsMsgHeader_Get(message, ClusterHeaders.messageID, &messageID) == NATS_OK
            ? messageID.flatMap { ClusterHeaders.version(messageID: String(cString: $0)) } : nil
        return StreamMessage(subject: String(cString: natsMsg_GetSubject(message)), payload: payload, eventID: eventID, version: version,
                             sequence: sequence, timestampNanoseconds: time)
    }

    /// An ordered consumer (ephemeral, no acknowledgements, recreated by the client on a
    /// gap) delivering `filter`'s messages from `startSequence` on.
    func orderedConsumer(stream: String, filter: String, startSequence: UInt64, headersOnly: Bool) throws -> OrderedConsumer {
        var options = jsSubOptions()
        jsSubOptions_Init(&options)
        options.Ordered = true
        options.Config.DeliverPolicy = startSequence > 1 ? js_DeliverByStartSequence : js_DeliverAll
        options.Config.OptStartSeq = startSequence > 1 ? startSequence : 0
        options.Config.HeadersOnly = headersOnly
        var subscription: OpaquePointer?
        var code = jsErrCode(0)
        let status = stream.withCString { name in
            options.Stream = name
            return js_SubscribeSync(&subscription, context, filter, nil, &options, &code)
        }
        guard status == NATS_OK, let subscription else { throw NatsError(status, code, doing: "creating a consumer of \(filter) from \(startSequence)") }
        _ = natsSubscription_SetPendingLimits(subscription, 1 << 20, 1 << 30)
        return OrderedConsumer(subscription: subscription, filter: filter)
    }
}

/// An ordered consumer's subscription; read it from one thread at a time.
final class OrderedConsumer: @unchecked Sendable {
    private let subscription: OpaquePointer
    let filter: String

    init(subscription: OpaquePointer, filter: String) {
        self.subscription = subscription
        self.filter = filter
    }

    deinit {
        _ = natsSubscription_Unsubscribe(subscription)
        natsSubscription_Destroy(subscription)
    }

    /// The next message, or nil when none came within `timeoutMilliseconds`.
    func next(timeoutMilliseconds: Int64) throws -> StreamMessage? {
        var message: OpaquePointer?
        let status = natsSubscription_NextMsg(&message, subscription, timeoutMilliseconds)
        if status == NATS_TIMEOUT { return nil }
        guard status == NATS_OK, let message else { throw NatsError(status, doing: "reading \(filter)") }
        defer { natsMsg_Destroy(message) }
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        let metaStatus = natsMsg_GetMetaData(&meta, message)
        guard metaStatus == NATS_OK, let meta else { throw NatsError(metaStatus, doing: "reading the metadata of a message of \(filter)") }
        defer { jsMsgMetaData_Destroy(meta) }
        return NatsConnection.streamMessage(message, sequence: meta.pointee.Sequence.Stream, time: meta.pointee.Timestamp)
    }
}
