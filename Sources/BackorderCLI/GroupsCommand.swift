import ArgumentParser
import Consumers
import EventStore
import Foundation
import OutOfStock
import RecordsView

/// `backorder groups`: the consumer groups of a store — lag, members, parked events — and
/// moving or removing them (docs/CONSUMERS.md).
struct GroupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Show and manage consumer groups: lag, lanes held, parked events; reset, replay parked, delete.",
        subcommands: [List.self, Show.self, Reset.self, ReplayParked.self, Delete.self])

    /// Which groups: the store-wide ones of `consume`, or a tenant's own.
    struct Scope: ParsableArguments {
        @Option(help: "A tenant's own groups (those `backorder serve` holds for HTTP clients) instead of the store-wide groups of `consume`.")
        var tenant: String?
    }

    /// Opens the store's source and the group, checking that the group exists.
    static func open(_ data: DataOptions, _ scope: Scope, _ name: String) async throws -> (any EventSource, any GroupCoordinator) {
        do { try ConsumerGroup.validate(name: name) } catch { throw ValidationError("\(error)") }
        let place = try await GroupPlace.open(data, tenant: scope.tenant)
        let known = try await place.names()
        guard known.contains(name) else {
            throw QueryError(description: "no consumer group \(name) among \(place.description)" + (known.isEmpty ? " (there are none)" : "; groups: \(known.joined(separator: ", "))"))
        }
        return (place.source, try await place.group(name))
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every group with its lag, lanes held and parked events.")
        @OptionGroup var data: DataOptions
        @OptionGroup var scope: Scope

        func run() async throws {
            try await runQuery {
                let place = try await GroupPlace.open(data, tenant: scope.tenant)
                let ends = try place.source.endOffsets()
                print("GROUP                 LAG        HELD   PARKED")
                for name in try await place.names() {
                    let lanes = try await place.group(name).status(ends: ends)
                    let lag = lanes.reduce(Int64(0)) { $0 + $1.lag }
                    let row = [name.padding(toLength: 21, withPad: " ", startingAt: 0), String(lag).padding(toLength: 10, withPad: " ", startingAt: 0),
                               "\(lanes.filter(\.held).count)/\(lanes.count)".padding(toLength: 6, withPad: " ", startingAt: 0),
                               String(lanes.reduce(0) { $0 + $1.parked.count })]
                    print(row.joined(separator: " "))
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One group, lane by lane: checkpoint, end, lag, held, parked events.")
        @OptionGroup var data: DataOptions
        @OptionGroup var scope: Scope
        @Argument(help: "The group.") var group: String

        func run() async throws {
            try await runQuery {
                let (source, consumerGroup) = try await GroupsCommand.open(data, scope, group)
                let lanes = try consumerGroup.status(ends: try source.endOffsets())
                print("LANE  CHECKPOINT  END         LAG         HELD  PARKED")
                for lane in lanes {
                    let parked = lane.parked.map { "\($0.offset) (\($0.deliveries) deliveries: \($0.reason))" }.joined(separator: "; ")
                    print([String(lane.lane).padding(toLength: 5, withPad: " ", startingAt: 0), String(lane.checkpoint).padding(toLength: 11, withPad: " ", startingAt: 0),
                           String(lane.end).padding(toLength: 11, withPad: " ", startingAt: 0), String(lane.lag).padding(toLength: 11, withPad: " ", startingAt: 0),
                           (lane.held ? "yes" : "no").padding(toLength: 5, withPad: " ", startingAt: 0),
                           parked.isEmpty ? (lane.replay > 0 ? "\(lane.replay) to replay" : "-") : parked].joined(separator: " "))
                }
            }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a group's checkpoints (no member may be running).")
        @OptionGroup var data: DataOptions
        @OptionGroup var scope: Scope
        @Argument(help: "The group.") var group: String
        @Option(help: "earliest, latest, a time (events recorded at or after it are delivered again) or one offset per lane, comma-separated.") var to: String

        func run() async throws {
            try await runQuery {
                let (source, consumerGroup) = try await GroupsCommand.open(data, scope, group)
                let ends = try source.endOffsets()
                let positions: [Int64] = switch to {
                case "earliest": Array(repeating: 0, count: ends.count)
                case "latest": ends
                default: try ReadCommand.positions(to, option: "--to", source)
                }
                try consumerGroup.reset(to: positions)
                print("group \(group): checkpoints set to \(positions.map(String.init).joined(separator: ","))")
            }
        }
    }

    struct ReplayParked: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "replay-parked", abstract: "Deliver a group's parked events again, before its next events.")
        @OptionGroup var data: DataOptions
        @OptionGroup var scope: Scope
        @Argument(help: "The group.") var group: String

        func run() async throws {
            try await runQuery {
                let (_, consumerGroup) = try await GroupsCommand.open(data, scope, group)
                print("group \(group): \(try consumerGroup.replayParked()) parked events to deliver again")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a group and its checkpoints (no member may be running).")
        @OptionGroup var data: DataOptions
        @OptionGroup var scope: Scope
        @Argument(help: "The group.") var group: String

        func run() async throws {
            try await runQuery {
                let (_, consumerGroup) = try await GroupsCommand.open(data, scope, group)
                try consumerGroup.delete()
                print("group \(group) deleted")
            }
        }
    }
}
