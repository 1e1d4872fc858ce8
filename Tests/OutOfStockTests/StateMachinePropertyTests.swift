import DataGenerator
import Testing
@testable import OutOfStock

/// Seeded random walks over the record state machine: whatever the decider accepts keeps
/// the invariants, and whatever it rejects would have broken a rule.
@Suite struct StateMachinePropertyTests {
    typealias Random = SplitMix64

    static let parties: [String: StreamState] = [
        "customer/C-1": .customer(CustomerState(name: "Ada", region: "North", removed: false)),
        "product/P-1": .product(ProductState(name: "Shirt", sizes: ["S", "M"], removed: false)),
    ]

    func randomEvent(_ random: inout Random) throws -> InputEvent {
        let parser = try InputParser()
        let q = Int.random(in: 1...150, using: &random)
        let candidates = [
            line("OutOfStockReported", #""recordId":"R-1","customerId":"C-1","productId":"P-1","quantity":\#(q)"#),
            line("DeliveryRecorded", #""recordId":"R-1","quantity":\#(q)"#),
            line("DeliveryRecorded", #""recordId":"R-1","quantity":\#(q / 10 + 1)"#),
            line("OutOfStockAmended", #""recordId":"R-1","quantity":\#(q)"#),
            line("OutOfStockClosed", #""recordId":"R-1""#),
            line("RefundRecorded", #""recordId":"R-1""#),
            line("OutOfStockDeleted", #""recordId":"R-1""#),
        ]
        guard case let .success(event) = parser.parse(candidates.randomElement(using: &random) ?? candidates[0]) else {
            throw TestError()
        }
        return event
    }

    struct TestError: Error {}

    @Test(arguments: 0..<40)
    func acceptedEventsKeepTheInvariants(seed: Int) throws {
        var random = Random(seed: UInt64(seed))
        var state = StreamState.none
        var terminalSeen = false
        for _ in 0..<60 {
            let event = try randomEvent(&random)
            let before = state
            do {
                let data = try Decider.decide(event, Decider.Context(stream: state, lookup: { Self.parties[$0] ?? .none }))
                state = state.evolved(by: event.type.name, data)
                // Accepted: a terminal record only ever changes by a delete.
                if terminalSeen, case let .record(r) = before { #expect(event.type.name == "OutOfStockDeleted" && r.status != .deleted) }
            } catch is Decider.Violation {
                #expect(state == before, "a rejected event changes nothing")
            }
            if case let .record(r) = state {
                #expect(r.delivered >= 0 && r.delivered <= r.quantity, "never delivered beyond the quantity")
                #expect(r.quantity > 0)
                if r.status == .pending { #expect(r.delivered < r.quantity, "a fully delivered record is completed") }
                terminalSeen = r.status.isTerminal
            }
        }
    }
}
