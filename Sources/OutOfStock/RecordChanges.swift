/// One field's value before and after an event (nil: it had none / has none).
public struct FieldChange: Sendable, Equatable, Encodable {
    /// The field: a state field (`status`, `quantity`, `delivered`, `customerId`,
    /// `productId`, `size`) or a data field the event carries (`notes`, `reason`, …).
    public let field: String
    /// The value before the event.
    public let before: String?
    /// The value after it.
    public let after: String?
}

/// Follows one stream's events and tells, for each, what it changed: the derived state
/// (through `StreamState.evolved`, the same rules the decider and the views use) and
/// every other data field the event sets, compared with that field's previous value in
/// the stream. For `backorder audit history`.
public struct ChangeTracker: Sendable {
    private var state: StreamState = .none
    private var lastValues: [Field: FieldValue] = [:]

    /// A tracker before the stream's first event.
    public init() {}

    /// Applies the next event of the stream and returns what it changed, state fields first.
    public mutating func apply(type: String, data: EventData) -> [FieldChange] {
        let before = state
        state = state.evolved(by: type, data)
        var changes = Self.stateFields(before).compactMap { field, old -> FieldChange? in
            let new = Self.stateFields(state).first { $0.0 == field }?.1
            return old == new ? nil : FieldChange(field: field, before: old, after: new)
        }
        for (field, new) in Self.stateFields(state) where !changes.contains(where: { $0.field == field }) && !Self.stateFields(before).contains(where: { $0.0 == field }) {
            changes.append(FieldChange(field: field, before: nil, after: new))
        }
        for field in data.fields where !Self.derived.contains(field) {
            guard let value = data[field] else { continue }
            let old = lastValues[field]
            lastValues[field] = value
            if old != value { changes.append(FieldChange(field: field.name, before: old.map(Self.text), after: Self.text(value))) }
        }
        return changes
    }

    /// Data fields already shown through the state (or naming the stream itself).
    private static let derived: Set<Field> = [.recordId, .customerId, .productId, .size, .quantity, .name, .sizes, .region]

    /// The state's fields as text, in a fixed order (absent ones left out).
    private static func stateFields(_ state: StreamState) -> [(String, String?)] {
        switch state {
        case .none:
            return []
        case let .record(r):
            return [("status", r.status.rawValue), ("quantity", String(r.quantity)), ("delivered", String(r.delivered)),
                    ("customerId", r.customerId), ("productId", r.productId), ("size", r.size)]
        case let .customer(c):
            return [("name", c.name), ("region", c.region), ("removed", String(c.removed))]
        case let .product(p):
            return [("name", p.name), ("sizes", p.sizes.joined(separator: ",")), ("removed", String(p.removed))]
        }
    }

    /// A value as text: lists joined with commas.
    public static func text(_ value: FieldValue) -> String {
        switch value {
        case let .string(s): s
        case let .integer(v): String(v)
        case let .number(d): String(d)
        case let .strings(list): list.joined(separator: ",")
        }
    }
}
