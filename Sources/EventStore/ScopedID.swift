/// An event id within its tenant: the key the store deduplicates on.
///
/// Ids are an idempotency key per tenant, not across the store: tenant `t002` may use an id
/// that `t001` used, and the two events are both stored. The scoped id is the id's halves
/// XOR a 128-bit hash of the tenant; two (tenant, id) pairs that still met on one scoped
/// id would be told apart by the stored event, which an append compares before it calls a
/// resend a duplicate (`EventStoreError.idConflict`).
public struct ScopedID: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    /// A scoped id from its halves (as stored).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The id `id` of tenant `tenant`.
    public init(tenant: String, id: EventID) {
        var tenant = tenant
        self = tenant.withUTF8 { ScopedID(tenant: UnsafeRawBufferPointer($0), id: id) }
    }

    /// The id `id` of the tenant whose UTF-8 name is `tenant`.
    public init(tenant: UnsafeRawBufferPointer, id: EventID) {
        let hash = StreamHash(key: tenant)
        high = id.high ^ hash.k0
        low = id.low ^ hash.k1
    }

    /// The 64 bits the index files an id under (docs/EVENTS.md, "Indexes"): the high half
    /// mixed, XOR the low half, so that ids differing in either half get different keys.
    /// Two ids can share one; the index tells them apart by the stored event.
    var shortKey: UInt64 { StreamHash.mix(high) ^ low }
}
