public import SluiceAPI

/// What an assignor decides from: the members (sorted by member id) with the topics each
/// subscribed to, every partition of those topics, and who holds what now.
public struct AssignmentInput: Sendable {
    public struct Member: Sendable {
        public var id: String
        public var topics: Set<String>

        public init(id: String, topics: Set<String>) {
            self.id = id
            self.topics = topics
        }
    }

    public var members: [Member]
    public var partitions: [GroupPartition]
    /// The partitions each member holds and keeps reading (pending revocations excluded).
    public var current: [String: Set<GroupPartition>]

    public init(members: [Member], partitions: [GroupPartition], current: [String: Set<GroupPartition>] = [:]) {
        self.members = members.sorted { $0.id < $1.id }
        self.partitions = partitions.sorted()
        self.current = current
    }
}

/// A strategy that maps every partition to one member subscribed to its topic. Pure:
/// the same input gives the same target, so rebalances are reproducible in tests.
public protocol Assignor: Sendable {
    /// Every member id of the input is a key of the result (possibly with no partitions);
    /// every partition with at least one subscribed member is in exactly one value.
    func assign(_ input: AssignmentInput) -> [String: Set<GroupPartition>]
}

public enum Assignors {
    /// The assignor of a strategy (`.unspecified` means sticky, as groups.proto says).
    public static func assignor(for strategy: AssignmentStrategy) -> any Assignor {
        switch strategy {
        case .range: RangeAssignor()
        case .roundRobin: RoundRobinAssignor()
        case .sticky, .unspecified, .unrecognized: StickyAssignor()
        }
    }
}
