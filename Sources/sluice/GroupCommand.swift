import ArgumentParser
import Foundation
import SluiceAPI
import SluiceClient

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "List, describe, reset and delete consumer groups.",
        discussion: """
            Failures print one line to stderr and exit non-zero (1 for a refused request, 2 for a \
            usage error). Resetting or deleting a group that has members is refused.
            """,
        subcommands: [List.self, Describe.self, ResetOffsets.self, Delete.self])
}

extension GroupCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups: name, state, generation, members, topics.")
        @OptionGroup var options: BrokerOptions

        func run() async throws {
            let groups = await options.withAdminClient { try await $0.listGroups() }
            var rows = [["GROUP", "STATE", "GENERATION", "MEMBERS", "TOPICS"]]
            for group in groups.sorted(by: { $0.group < $1.group }) {
                rows.append([group.group, GroupText.state(group.state), "\(group.generation)", "\(group.memberCount)",
                             group.topics.sorted().joined(separator: ",")])
            }
            print(GroupText.table(rows), terminator: "")
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a group's state, members, and per partition its committed offset, log end, lag and owner.")
        @OptionGroup var target: GroupTarget

        func run() async throws {
            let group = await target.options.withAdminClient { try await $0.describeGroup(named: target.name) }
            print(GroupText.describe(group), terminator: "")
        }
    }

    struct ResetOffsets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-offsets",
            abstract: "Set a group's committed offsets for a topic (the group must have no members).",
            discussion: "Give exactly one target. Prints TOPIC PARTITION NEW-OFFSET per partition.")
        @OptionGroup var target: GroupTarget
        @Option(help: "The topic whose offsets are set.") var topic: String
        @Option(help: "Comma-separated partitions; default all of the topic's.") var partitions: PartitionList?
        @Flag(help: "To the oldest retained offset.") var toEarliest = false
        @Flag(help: "To the log end.") var toLatest = false
        @Option(help: "To this offset.") var toOffset: Int64?
        @Option(help: "To the first offset at or after this time (ms since the epoch).") var toTimestamp: Int64?
        @Option(help: "Move the committed offset by this many (negative: back), clamped to the log.") var shiftBy: Int64?
        @Flag(help: "Show what would be set; set nothing.") var dryRun = false

        func validate() throws {
            let given = [toEarliest, toLatest, toOffset != nil, toTimestamp != nil, shiftBy != nil].filter { $0 }.count
            guard given == 1 else {
                throw ValidationError("give exactly one of --to-earliest, --to-latest, --to-offset, --to-timestamp, --shift-by")
            }
            if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must be 0 or more") }
        }

        var resetTo: ResetOffsetsRequest.Target {
            if toEarliest { return .earliest(true) }
            if toLatest { return .latest(true) }
            if let toOffset { return .offset(toOffset) }
            if let toTimestamp { return .timestampMs(toTimestamp) }
            return .shiftBy(shiftBy ?? 0)
        }

        func run() async throws {
            let resetTo = resetTo
            let offsets = await target.options.withAdminClient {
                try await $0.resetOffsets(group: target.name, topic: topic, partitions: partitions?.values ?? [], to: resetTo, dryRun: dryRun)
            }
            var rows = [["TOPIC", "PARTITION", "NEW-OFFSET"]]
            for offset in offsets.sorted(by: { ($0.topic, $0.partition) < ($1.topic, $1.partition) }) {
                rows.append([offset.topic, "\(offset.partition)", "\(offset.offset)"])
            }
            print(GroupText.table(rows), terminator: "")
            if dryRun { print("(dry run: nothing was changed)") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a group and its committed offsets (it must have no members).")
        @OptionGroup var target: GroupTarget

        func run() async throws {
            await target.options.withAdminClient { try await $0.deleteGroup(named: target.name) }
            print("deleted group \(target.name)")
        }
    }
}

/// The broker and the group a group subcommand acts on.
struct GroupTarget: ParsableArguments {
    @OptionGroup var options: BrokerOptions
    @Argument(help: "Group name.") var name: String
}

/// `--partitions 0,1,5`.
struct PartitionList: ExpressibleByArgument {
    var values: [UInt32]

    init?(argument: String) {
        var values: [UInt32] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = UInt32(part.trimmingCharacters(in: .whitespaces)) else { return nil }
            values.append(value)
        }
        guard !values.isEmpty else { return nil }
        self.values = values
    }

    static var defaultValueDescription: String { "0,1,..." }
}

enum GroupText {
    static func state(_ state: GroupState) -> String {
        switch state {
        case .empty: "Empty"
        case .rebalancing: "Rebalancing"
        case .stable: "Stable"
        case .unspecified: "Unknown"
        case .unrecognized(let value): "Unknown(\(value))"
        }
    }

    static func strategy(_ strategy: AssignmentStrategy) -> String {
        switch strategy {
        case .range: "range"
        case .roundRobin: "round-robin"
        case .sticky, .unspecified: "sticky"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }

    /// The `describe` text: a header, the members, then one row per partition as
    /// kafka-consumer-groups.sh --describe prints them. "-" marks no committed offset / no owner.
    static func describe(_ group: GroupDescription) -> String {
        var text = "group \(group.group)  state \(state(group.state))  generation \(group.generation)  strategy \(strategy(group.strategy))  members \(group.members.count)\n\n"
        var partitions = [["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "OWNER"]]
        for lag in group.partitions.sorted(by: { ($0.topic, $0.partition) < ($1.topic, $1.partition) }) {
            // An offline partition's log end and lag are unknown, not 0.
            partitions.append([
                lag.topic, "\(lag.partition)", lag.committedOffset < 0 ? "-" : "\(lag.committedOffset)",
                lag.offline ? "OFFLINE" : "\(lag.logEndOffset)", lag.offline ? "?" : "\(lag.lag)",
                lag.owner.isEmpty ? "-" : lag.owner,
            ])
        }
        text += table(partitions)
        for lag in group.partitions where lag.offline {
            text += "\(lag.topic)/\(lag.partition) is offline: \(lag.offlineReason)\n"
        }
        if !group.members.isEmpty {
            text += "\n"
            var members = [["MEMBER", "INSTANCE", "CLIENT", "HOST", "ASSIGNED", "PENDING-REVOCATION"]]
            for member in group.members.sorted(by: { $0.memberId < $1.memberId }) {
                members.append([
                    member.memberId, member.instanceId.isEmpty ? "-" : member.instanceId, member.clientId.isEmpty ? "-" : member.clientId,
                    member.host.isEmpty ? "-" : member.host, partitionsText(member.assigned), partitionsText(member.pendingRevocation),
                ])
            }
            text += table(members)
        }
        return text
    }

    static func partitionsText(_ lists: [TopicPartitions]) -> String {
        let text = lists.sorted { $0.topic < $1.topic }.map { "\($0.topic):\($0.partitions.sorted().map(String.init).joined(separator: ","))" }
        return text.isEmpty ? "-" : text.joined(separator: " ")
    }

    /// Left-aligned columns two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = Array(repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
