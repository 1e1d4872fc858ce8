import CNats
import Foundation

/// A JetStream key-value bucket (nats.c's `kvStore`): a stream of one message per key,
/// whose revision (the message's stream sequence) allows compare-and-set. Calls block
/// their thread; reads and writes are retried through leader elections like the store's.
final class NatsKeyValue: @unchecked Sendable {
    // @unchecked: nats.c's kvStore is thread-safe; `store` is never changed.
    let connection: NatsConnection
    let bucket: String
    private let store: OpaquePointer

    /// A key's current value.
    struct Entry: Sendable {
        let value: [UInt8]
        let revision: UInt64
        /// When the server stored this revision (nanoseconds since 1970, the stream
        /// leader's clock).
        let createdNanoseconds: Int64
    }

    /// Binds to `bucket`, creating it (history 1, file storage, `replicas`) if missing and
    /// `create`; a missing bucket not created is a `NATS_NOT_FOUND` error.
    init(connection: NatsConnection, bucket: String, replicas: Int, description: String, create: Bool) throws {
        self.connection = connection
        self.bucket = bucket
        var store: OpaquePointer?
        var status = js_KeyValue(&store, connection.context, bucket)
        if status == NATS_NOT_FOUND && create {
            var config = kvConfig()
            kvConfig_Init(&config)
            status = bucket.withCString { name in
                description.withCString { text in
                    config.Bucket = name
                    config.Description = text
                    config.History = 1
                    config.StorageType = js_FileStorage
                    config.Replicas = Int32(replicas)
                    return js_CreateKeyValue(&store, connection.context, &config)
                }
            }
        }
        guard status == NATS_OK, let store else { throw NatsError(status, doing: "opening key-value bucket \(bucket)") }
        self.store = store
    }

    deinit { kvStore_Destroy(store) }

    /// The key's value, or nil when it has none (never written, or deleted).
    func get(_ key: String) throws -> Entry? {
        try connection.retrying {
            var entry: OpaquePointer?
            let status = kvStore_Get(&entry, store, key)
            if status == NATS_NOT_FOUND { return nil }
            guard status == NATS_OK, let entry else { throw NatsError(status, doing: "reading \(key) of bucket \(bucket)") }
            defer { kvEntry_Destroy(entry) }
            let length = Int(kvEntry_ValueLen(entry))
            let value = length > 0 ? kvEntry_Value(entry).map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? [] : []
            return Entry(value: value, revision: kvEntry_Revision(entry), createdNanoseconds: kvEntry_Created(entry))
        }
    }

    /// Writes `value` if the key's revision is still `last` (0: the key has no value).
    /// Returns the new revision, or nil when the key moved on meanwhile.
    func update(_ key: String, _ value: [UInt8], last: UInt64) throws -> UInt64? {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { bytes in
            last == 0 ? kvStore_Create(&revision, store, key, bytes.baseAddress, Int32(bytes.count))
                      : kvStore_Update(&revision, store, key, bytes.baseAddress, Int32(bytes.count), last)
        }
        if status == NATS_OK { return revision }
        let error = NatsError(status, doing: "writing \(key) of bucket \(bucket)")
        // The server's "wrong last sequence" (JetStream error 10071), which nats.c's
        // key-value calls pass on as text only.
        if error.message.contains("wrong last sequence") || error.message.contains("key exists") { return nil }
        throw error
    }

    /// Writes `value` whatever the key's revision.
    func put(_ key: String, _ value: [UInt8]) throws {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Put(&revision, store, key, $0.baseAddress, Int32($0.count)) }
        guard status == NATS_OK else { throw NatsError(status, doing: "writing \(key) of bucket \(bucket)") }
    }

    /// Removes the key and its history.
    func purge(_ key: String) throws {
        let status = kvStore_Purge(store, key, nil)
        guard status == NATS_OK else { throw NatsError(status, doing: "removing \(key) of bucket \(bucket)") }
    }

    /// Every key with a value, once each, sorted (a scan of the bucket through an ephemeral
    /// consumer: for administration and membership, not for each event).
    func keys() throws -> [String] {
        try connection.retrying {
            var list = kvKeysList()
            let status = kvStore_Keys(&list, store, nil)
            if status == NATS_NOT_FOUND { return [] }
            guard status == NATS_OK else { throw NatsError(status, doing: "listing the keys of bucket \(bucket)") }
            defer { kvKeysList_Destroy(&list) }
            // Once each: a key rewritten while the list is gathered can be listed twice.
            return Array(Set((0..<Int(list.Count)).compactMap { list.Keys?[$0].map { String(cString: $0) } })).sorted()
        }
    }
}
