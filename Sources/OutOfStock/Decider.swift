/// The domain's rules (domain.md, "Events"): whether an event may be appended given the
/// current state of its stream and of the customer and product it names. Each rejection
/// names the field and the rule.
public enum Decider {
    /// What the decider needs to know besides the event's own stream.
    public struct Context {
        /// State of the event's stream.
        public var stream: StreamState
        /// Looks up a customer's or product's state by stream name.
        public var lookup: (String) throws -> StreamState

        /// A context.
        public init(stream: StreamState, lookup: @escaping (String) throws -> StreamState) {
            self.stream = stream
            self.lookup = lookup
        }
    }

    /// A broken rule: the field it concerns and the rule, as a sentence.
    public struct Violation: Error, Equatable {
        /// Field path, like `data.quantity`.
        public let field: String
        /// The rule.
        public let rule: String
    }

    /// Checks `event`; returns its data as it will be stored (enriched with the names a
    /// request keeps), or throws the violated rule.
    public static func decide(_ event: InputEvent, _ context: Context) throws -> EventData {
        let data = event.data
        let id = event.stream
        func violation(_ field: String, _ rule: String) -> Violation { Violation(field: field, rule: rule) }
        switch event.type.kind {
        case .customerRegistered, .productRegistered:
            guard case .none = context.stream else {
                throw violation("data.\(event.type.streamField.name)", "\(id) is already registered in tenant \(event.tenant)")
            }
            return data
        case .customerUpdated, .customerRemoved:
            guard case let .customer(c) = context.stream else { throw violation("data.customerId", "unknown customer \(id)") }
            guard !c.removed else { throw violation("data.customerId", "customer \(id) was removed") }
            return data
        case .productUpdated, .productRemoved:
            guard case let .product(p) = context.stream else { throw violation("data.productId", "unknown product \(id)") }
            guard !p.removed else { throw violation("data.productId", "product \(id) was removed") }
            return data
        case .outOfStockReported:
            guard case .none = context.stream else { throw violation("data.recordId", "record \(id) was already reported") }
            var enriched = data
            let (customer, product) = try parties(data.string(.customerId), data.string(.productId), size: data.string(.size), context, violation)
            enriched[.customerName] = customer.map { .string($0.name) }
            enriched[.productName] = product.map { .string($0.name) }
            return enriched
        default:
            break
        }
        // Record events after the report.
        guard case let .record(record) = context.stream else { throw violation("data.recordId", "unknown record \(id)") }
        switch event.type.kind {
        case .outOfStockDeleted:
            guard record.status != .deleted else { throw violation("data.recordId", "record \(id) is already deleted") }
            return data
        default:
            guard record.status == .pending else {
                throw violation("data.recordId", "record \(id) is \(record.status.rawValue); only pending records take \(event.type.name)")
            }
        }
        switch event.type.kind {
        case .outOfStockAmended:
            if let q = data.integer(.quantity), q < record.delivered {
                throw violation("data.quantity", "new quantity \(q) is less than the \(record.delivered) already delivered")
            }
            // A new product must come in the record's size (the new one or the current one).
            let size = data.string(.size) ?? (data.string(.productId) != nil ? record.size : nil)
            if data.string(.customerId) != nil || data.string(.productId) != nil || size != nil {
                let (customer, product) = try parties(data.string(.customerId), data.string(.productId) ?? (size != nil ? record.productId : nil),
                                                      size: size, context, violation)
                // Like a report, an amendment keeps the names as they are now (schema version 2).
                var enriched = data
                if data.string(.customerId) != nil { enriched[.customerName] = customer.map { .string($0.name) } }
                if data.string(.productId) != nil { enriched[.productName] = product.map { .string($0.name) } }
                return enriched
            }
        case .deliveryRecorded:
            let q = data.integer(.quantity) ?? 0
            guard q <= record.remaining else {
                throw violation("data.quantity", "delivery of \(q) exceeds the remaining \(record.remaining) of record \(id)")
            }
        default:
            break // OutOfStockClosed, RefundRecorded: pending is all they need.
        }
        return data
    }

    /// Checks that a named customer and product exist and are not removed, and that a
    /// size is one the product comes in.
    private static func parties(_ customerId: String?, _ productId: String?, size: String?, _ context: Context,
                                _ violation: (String, String) -> Violation) throws -> (CustomerState?, ProductState?) {
        var customer: CustomerState?, product: ProductState?
        if let customerId {
            guard case let .customer(c) = try context.lookup(StreamName.customer(customerId)) else {
                throw violation("data.customerId", "unknown customer \(customerId)")
            }
            guard !c.removed else { throw violation("data.customerId", "customer \(customerId) was removed") }
            customer = c
        }
        if let productId {
            guard case let .product(p) = try context.lookup(StreamName.product(productId)) else {
                throw violation("data.productId", "unknown product \(productId)")
            }
            guard !p.removed else { throw violation("data.productId", "product \(productId) was removed") }
            if let size, !p.sizes.isEmpty, !p.sizes.contains(size) {
                throw violation("data.size", "product \(productId) comes in \(p.sizes.joined(separator: ", ")), not \(size)")
            }
            product = p
        }
        return (customer, product)
    }
}
