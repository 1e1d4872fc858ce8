import KVStore
import OutOfStock

/// The decider's view of streams, read from the records view instead of the log: a
/// request's state from its columns, a customer's or product's from its row — each with
/// the stream version it reflects (the ingestor trusts it only at the store's version).
public final class ViewStateLookup: StreamStateLookup {
    private let snapshot: KVSnapshot

    /// Lookups on a read view of the records view.
    public init(snapshot: KVSnapshot) { self.snapshot = snapshot }

    public func state(tenant: String, stream: String) throws -> (version: Int64, state: StreamState)? {
        let queries = RecordsQueries(snapshot: snapshot, tenant: tenant)
        if let id = StreamName.id(in: stream, prefix: StreamName.recordPrefix) {
            guard let details = try queries.details(id), let c = try queries.columns(details.requestedAt, id) else { return nil }
            return (c.version, .record(RecordState(status: c.status, quantity: c.quantity, delivered: c.delivered, customerId: c.customerId,
                                                   productId: c.productId, size: c.size)))
        }
        if let id = StreamName.id(in: stream, prefix: StreamName.customerPrefix) {
            return try queries.decode(RowKeys.customer(tenant, id)) { try StoredParty<CustomerRow>(id: id, decoding: $0) }.map { ($0.version, $0.decision) }
        }
        if let id = StreamName.id(in: stream, prefix: StreamName.productPrefix) {
            return try queries.decode(RowKeys.product(tenant, id)) { try StoredParty<ProductRow>(id: id, decoding: $0) }.map { ($0.version, $0.decision) }
        }
        return nil
    }
}
